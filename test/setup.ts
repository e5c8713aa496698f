import 'reflect-metadata';
import { initBackend } from '../src/core/backend.js';

await initBackend({ preferred: process.env.PEFT_TEST_BACKEND ?? 'cpu', quiet: true });

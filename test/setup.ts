import 'reflect-metadata';
import { initBackend } from '../src/app/backend.js';

await initBackend({ preferred: process.env.PEFT_TEST_BACKEND ?? 'cpu', quiet: true });

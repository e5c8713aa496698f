#!/usr/bin/env node
// The `peft` command line. Commands live in dist/src/commands (built by `npm ci`'s prepare step).
import { execute } from '@oclif/core';
import { normaliseArgv } from '../dist/src/cli/argv.js';

await execute({ dir: import.meta.url, args: normaliseArgv(process.argv.slice(2)) });

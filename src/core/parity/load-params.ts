// Loading a fixture's `param/` state dict into a model, strictly except for
// keys the reference holds but never uses (such as Medical-SAM-Adapter's
// Depth_Adapter): a missing, misshapen or other unexpected key is an error
// naming the fixture and the keys.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import type { Module } from '../nn/module.js';

/** Loads `params` into `model` (and disposes them); keys matching `ignore` may be unexpected. */
export function loadParamsExcept(model: Module, params: Map<string, tf.Tensor>, source: string, ignore?: RegExp): void {
  try {
    const report = model.loadStateDict(params, { strict: false, source });
    const unexpected = report.unexpected.filter((k) => !ignore?.test(k));
    if (report.missing.length || report.mismatched.length || unexpected.length) {
      const parts = [
        report.missing.length ? `missing: ${report.missing.join(', ')}` : '',
        report.mismatched.length ? `shape mismatch: ${report.mismatched.map((m) => `${m.key} expected [${m.expected}] got [${m.got}]`).join(', ')}` : '',
        unexpected.length ? `unexpected: ${unexpected.join(', ')}` : '',
      ].filter(Boolean);
      throw new PeftError(`${source}: state dict does not fit the model (${parts.join('; ')})`);
    }
  } finally {
    tf.dispose([...params.values()]);
  }
}

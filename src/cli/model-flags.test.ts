// --image-size goes through the key the backbone binds it to; a backbone that binds none refuses it by name.
import { describe, expect, it } from 'vitest';
import { backboneOverrides } from './model-flags.js';

describe('backboneOverrides', () => {
  it('sets the key the backbone binds --image-size to', () => {
    expect(backboneOverrides({ id: 'toy', flagKeys: { 'image-size': 'input_px' } }, { 'image-size': 96 })).toEqual({ input_px: 96 });
    expect(backboneOverrides({ id: 'toy' }, {})).toEqual({});
  });

  it('refuses --image-size for a backbone that binds no key to it', () => {
    expect(() => backboneOverrides({ id: 'fixed' }, { 'image-size': 96 })).toThrow("--image-size does not apply to backbone 'fixed' (it binds no key to it; set its size through a preset)");
  });
});

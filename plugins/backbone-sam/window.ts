// SAM's non-overlapping window partition (`window_partition`,
// `window_unpartition`), channels-last. The reshapes keep every transpose at
// rank 4 by folding the batch with the window row, and the (column-in-window,
// channel) pair into one axis.
import { tf } from '../../src/index.js';

export interface Partition {
  /** `[B * nh * nw, ws, ws, C]`, windows in (batch, window row, window column) order. */
  windows: tf.Tensor4D;
  /** The padded grid `[Hp, Wp]` (multiples of the window size). */
  padded: [number, number];
}

/** Zero-pads `x [B, H, W, C]` on the bottom and right to a multiple of `ws` and cuts it into windows. */
export function windowPartition(x: tf.Tensor4D, ws: number): Partition {
  const [b, h, w, c] = x.shape;
  const ph = (ws - (h % ws)) % ws;
  const pw = (ws - (w % ws)) % ws;
  const hp = h + ph;
  const wp = w + pw;
  const windows = tf.tidy(() => {
    const xp = ph || pw ? tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]]) : x;
    // [B*nh, ws(a), nw(j), ws*C (c, ch)] -> [B*nh, nw(j), ws(a), ws*C]
    const t = tf.transpose(tf.reshape(xp, [b * (hp / ws), ws, wp / ws, ws * c]), [0, 2, 1, 3]);
    return tf.reshape(t, [-1, ws, ws, c]) as tf.Tensor4D;
  });
  return { windows, padded: [hp, wp] };
}

/** Inverse of {@link windowPartition}: windows back to `[B, H, W, C]`, padding removed. */
export function windowUnpartition(windows: tf.Tensor4D, ws: number, padded: [number, number], size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const [hp, wp] = padded;
    const [h, w] = size;
    const c = windows.shape[3];
    const b = windows.shape[0] / ((hp / ws) * (wp / ws));
    // [B*nh, nw(j), ws(a), ws*C] -> [B*nh, ws(a), nw(j), ws*C]
    const t = tf.transpose(tf.reshape(windows, [b * (hp / ws), wp / ws, ws, ws * c]), [0, 2, 1, 3]);
    const x = tf.reshape(t, [b, hp, wp, c]) as tf.Tensor4D;
    return hp === h && wp === w ? x : tf.slice(x, [0, 0, 0, 0], [b, h, w, c]);
  });
}

// DoRA's own law (its `MethodDefinition.laws`, run by `peft verify dora`
// after the core laws): the weight really is decomposed into a magnitude and a
// direction. On random toys and configs drawn from the schema,
//   - m starts at W0's row norms;
//   - after training steps that move A, B and m, the merged weight's rows
//     have norms |m| (W' = m * V / ||V||), and its output equals the
//     unmerged layer's.
// The core laws cannot see this: a method that trained m as a plain per-row
// scale of W0 + s B A, without the normalisation, would pass all of them.
//
// Written only against peftjs's public API, received from the host.

/**
 * @param {typeof import('peftjs')} peftjs
 * @param {Function} DoraLinear the layer class (for `instanceof`)
 */
export function createDoraLaws(peftjs, DoraLinear) {
  const { tf, Subject, checkLaw, lawCases, violation, randomTensor, subSeed, trainStep } = peftjs;

  /** The largest |a - b| / (1 + |b|) over two tensors of one shape. */
  const relDiff = (a, b) => tf.tidy(() => tf.max(tf.div(tf.abs(tf.sub(a, b)), tf.add(1, tf.abs(b)))).dataSync()[0]);

  /**
   * @param {import('peftjs').MethodDefinition} def the definition under test
   * @param {import('peftjs').MethodLawOptions} options
   * @returns {import('peftjs').Law[]}
   */
  return (def, options) => [
    {
      name: "magnitude and direction: m starts at W0's row norms; after training, merged rows have norms |m|",
      run: (params) =>
        checkLaw(
          lawCases(def, options),
          async (c, tally) => {
            const s = Subject.create(def, c.shape, c.config, tally);
            try {
              const before = new Map(s.model.namedParameters().map(([k, p]) => [k, tf.clone(p.variable)]));
              s.compose(tally);
              const layers = [...s.model.namedModules()].filter(([, m]) => m instanceof DoraLinear);
              if (layers.length === 0) violation('compose made no DoRA layer');
              try {
                for (const [path, l] of layers) {
                  const w0 = before.get(`${path}.weight`);
                  const d = tf.tidy(() => relDiff(l.param('lora_magnitude_vector').variable, tf.norm(w0, 'euclidean', 1)));
                  if (!(d <= 1e-6)) violation(`'${path}.lora_magnitude_vector' differs from W0's row norms by ${d} at init`);
                }
              } finally {
                tf.dispose([...before.values()]);
              }
              const y = s.forward();
              const upstream = randomTensor(y.shape, subSeed(c.shape.seed, 31));
              y.dispose();
              try {
                for (let step = 1; step <= 3; step++) trainStep(s, upstream, step, 0.2);
              } finally {
                upstream.dispose();
              }
              s.model.eval();
              const x = randomTensor([2, layers[0][1].inFeatures], subSeed(c.shape.seed, 32));
              try {
                for (const [path, l] of layers) {
                  if (l.inFeatures !== x.shape[1]) continue;
                  const yu = l.forward(x);
                  l.merge();
                  const ym = l.forward(x);
                  const norms = tf.norm(l.param('weight').variable, 'euclidean', 1);
                  const m = tf.abs(l.param('lora_magnitude_vector').variable);
                  l.unmerge();
                  try {
                    const dn = relDiff(norms, m);
                    if (!(dn <= 1e-5)) violation(`'${path}': merged rows have norms that differ from |m| by ${dn}`);
                    const dy = relDiff(ym, yu);
                    if (!(dy <= 1e-4)) violation(`'${path}': the merged layer's output differs from the unmerged one's by ${dy}`);
                  } finally {
                    tf.dispose([yu, ym, norms, m]);
                  }
                }
              } finally {
                x.dispose();
              }
              tally.ran++;
            } finally {
              s.dispose();
            }
          },
          params,
        ),
    },
  ];
}

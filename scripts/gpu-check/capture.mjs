// The built decoder of a model on the CPU, recording what onnxruntime is given: the graph, its
// weights and the feeds of the latest run, for bisect.mjs and step-time.mjs to replay elsewhere.
export async function capturingRunner(ort, buildDir, modelPath) {
  const { openModel } = await import(`${buildDir}/src/engine/loaders/load.js`);
  const { ModelRunner } = await import(`${buildDir}/src/engine/runtime/runner.js`);
  const create = ort.InferenceSession.create;
  const captured = {};
  ort.InferenceSession.create = async (model, options) => {
    Object.assign(captured, { model, externalData: options.externalData });
    const session = await create.call(ort.InferenceSession, model, { ...options, executionProviders: ['cpu'] });
    const run = session.run.bind(session);
    session.run = async (feeds) => ((captured.feeds = feeds), run(feeds));
    return session;
  };
  const model = openModel(modelPath);
  try {
    const runner = await ModelRunner.create(model.config, model.weights, { features: { vlm: false, lora: false } });
    return { runner, captured };
  } finally {
    model.close(); // the session holds the weights now
    ort.InferenceSession.create = create;
  }
}

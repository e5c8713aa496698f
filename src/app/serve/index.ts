// `peft serve`: the web server over trained models, its limits, the runs it serves and their test images.
export {
  createServeApp,
  defaultServeLimits,
  defaultServeRateLimit,
  isLoopback,
  startServer,
  type RateLimit,
  type ServeAppOptions,
  type ServedRun,
  type ServeLimits,
  type ServeStats,
  type StartedServer,
} from './server.js';
export { openServedRuns, type OpenServedRunsOptions } from './served-run.js';
export { testImageSource, type TestImage, type TestImageSource, type TruthMask } from './test-images.js';

/**
 * The execution providers, apart from the session code (session.ts) so that a command's options can
 * name them without loading onnxruntime on the thread that parses them.
 */
export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';
/** What a user may ask for: a provider, or `auto` (the first of cuda, webgpu, cpu that loads). */
export type ProviderChoice = ExecutionProvider | 'auto';
export const EXECUTION_PROVIDERS: readonly ProviderChoice[] = ['cpu', 'webgpu', 'cuda', 'auto'];

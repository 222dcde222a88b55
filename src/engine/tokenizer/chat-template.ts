import { Interpreter, Template } from '@huggingface/jinja';

/**
 * Chat templates: Jinja, as in Hugging Face's tokenizer_config.json (rendered by @huggingface/jinja,
 * which needs no eval and so runs in Workers). An adapter may keep its own template in the
 * registry, e.g. the VLM paper's task layout `<source> ... <target>`; without one, the adapter's
 * task tokens come first and the messages' text follows, one message per line.
 *
 * A template is what a tenant uploads, so it runs under a budget: it is parsed when saved (a
 * syntax error is refused then), and a render may take MAX_STEPS interpreter steps and produce
 * MAX_OUTPUT characters at most (nested `range(100000)` loops fail fast instead of never returning).
 */
const DEFAULT_CHAT_TEMPLATE =
  '{%- for t in task_tokens %}{{ t }}{% endfor -%}' +
  "{%- for m in messages %}{{ m.content }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor -%}";

const MAX_STEPS = 100_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

export interface ChatMessage {
  role: string;
  content: string | Array<{ type: 'text'; text: string }>;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

// @huggingface/jinja has no step limit: count its interpreter's evaluations (one per syntax-tree
// node visited) while one of our renders runs. Renders are synchronous, so one counter serves all.
let stepsLeft = Infinity;
const proto = Interpreter.prototype as unknown as { evaluate: (...args: unknown[]) => unknown };
const evaluate = proto.evaluate;
proto.evaluate = function (this: unknown, ...args: unknown[]) {
  if (--stepsLeft < 0) throw new TemplateError(`the chat template ran over its budget of ${MAX_STEPS} steps`);
  return evaluate.apply(this, args);
};

const compiled = new Map<string, Template>();

/** Parses a template (when it is saved): a syntax error is a TemplateError with the parser's message. */
export function parseChatTemplate(source: string): Template {
  let template = compiled.get(source);
  if (template) return template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new TemplateError(`the chat template does not parse: ${(e as Error).message}`);
  }
  if (compiled.size > 256) compiled.clear(); // a bounded cache of parsed templates
  compiled.set(source, template);
  return template;
}

export function renderChat(
  messages: readonly ChatMessage[],
  opts: { template?: string | null; taskTokens?: readonly string[] } = {},
): string {
  const template = parseChatTemplate(opts.template || DEFAULT_CHAT_TEMPLATE);
  stepsLeft = MAX_STEPS;
  let text: string;
  try {
    text = template.render({
      messages: messages.map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
      })),
      task_tokens: [...(opts.taskTokens ?? [])],
      add_generation_prompt: true,
    });
  } catch (e) {
    if (e instanceof TemplateError) throw e;
    throw new TemplateError(`the chat template failed: ${(e as Error).message}`);
  } finally {
    stepsLeft = Infinity;
  }
  if (text.length > MAX_OUTPUT) throw new TemplateError(`the chat template produced over ${MAX_OUTPUT} characters`);
  return text;
}

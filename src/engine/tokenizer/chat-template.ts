import { Template } from '@huggingface/jinja';
import { renderWithinBudget, TemplateBudgetError } from './template-budget.ts';

export { TemplateBudgetError } from './template-budget.ts';

/**
 * Chat templates: Jinja, as in Hugging Face's tokenizer_config.json (rendered by @huggingface/jinja,
 * which needs no eval and so runs in Workers). An adapter may keep its own template in the
 * registry, e.g. the VLM paper's task layout `<source> ... <target>`; without one, the adapter's
 * task tokens come first and the messages' text follows, one message per line.
 *
 * A template is what a tenant uploads, so it runs under a budget: it is parsed when saved (a
 * syntax error is refused then), and every render is bounded while it runs, in steps, in the work
 * of each operation and in the size of every value it makes, the output included (see
 * template-budget.ts): a template over budget fails that render with a TemplateBudgetError.
 */
const DEFAULT_CHAT_TEMPLATE =
  '{%- for t in task_tokens %}{{ t }}{% endfor -%}' +
  "{%- for m in messages %}{{ m.content }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor -%}";

export interface ChatMessage {
  role: string;
  content: string | Array<{ type: 'text'; text: string }>;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

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

/** How a conversation is rendered, with vLLM's names for the switches. */
interface RenderOptions {
  template?: string | null;
  taskTokens?: readonly string[];
  /** Extra template variables (vLLM's chat_template_kwargs, e.g. Qwen3's enable_thinking). */
  kwargs?: Readonly<Record<string, unknown>>;
  /** End with the cue for the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
  /** Leave the final message open, so the model continues it (transformers' continue_final_message). */
  continueFinalMessage?: boolean;
}

/** Variables the renderer sets itself: chat_template_kwargs may not replace them. */
export const RESERVED_TEMPLATE_VARIABLES = ['messages', 'task_tokens', 'add_generation_prompt'] as const;

export function renderChat(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
  const template = parseChatTemplate(opts.template || DEFAULT_CHAT_TEMPLATE);
  const reserved = Object.keys(opts.kwargs ?? {}).find((k) =>
    (RESERVED_TEMPLATE_VARIABLES as readonly string[]).includes(k),
  );
  if (reserved) throw new TemplateError(`chat_template_kwargs may not set "${reserved}"`);
  if (opts.continueFinalMessage && opts.addGenerationPrompt)
    throw new TemplateError('continue_final_message and add_generation_prompt cannot both be true');
  const flat = messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
  let rendered: string;
  try {
    rendered = renderWithinBudget(template, {
      ...opts.kwargs,
      messages: flat,
      task_tokens: [...(opts.taskTokens ?? [])],
      add_generation_prompt: opts.continueFinalMessage ? false : (opts.addGenerationPrompt ?? true),
    });
  } catch (e) {
    if (e instanceof TemplateError || e instanceof TemplateBudgetError) throw e;
    throw new TemplateError(`the chat template failed: ${(e as Error).message}`);
  }
  return opts.continueFinalMessage ? openFinalMessage(rendered, flat.at(-1)?.content ?? '') : rendered;
}

/**
 * The render cut right after the final message's text (what transformers does for
 * continue_final_message): the template's end-of-turn markup after it goes, so the model goes on
 * with the message instead of starting a new one.
 */
function openFinalMessage(rendered: string, final: string): string {
  const at = final.trim() ? rendered.lastIndexOf(final.trim()) : -1;
  if (at < 0)
    throw new TemplateError('continue_final_message: the final message does not appear in the rendered template');
  // Spacing the template kept stays; trailing spacing it trimmed is not put back.
  const kept = rendered.slice(at, at + final.trimStart().length) === final.trimStart();
  return rendered.slice(0, at + (kept ? final.trimStart().length : final.trim().length));
}

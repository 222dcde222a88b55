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

export function renderChat(
  messages: readonly ChatMessage[],
  opts: { template?: string | null; taskTokens?: readonly string[] } = {},
): string {
  const template = parseChatTemplate(opts.template || DEFAULT_CHAT_TEMPLATE);
  try {
    return renderWithinBudget(template, {
      messages: messages.map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
      })),
      task_tokens: [...(opts.taskTokens ?? [])],
      add_generation_prompt: true,
    });
  } catch (e) {
    if (e instanceof TemplateError || e instanceof TemplateBudgetError) throw e;
    throw new TemplateError(`the chat template failed: ${(e as Error).message}`);
  }
}

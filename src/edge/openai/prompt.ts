import { ApiError } from '../../http/errors.ts';
import { renderChat, TemplateBudgetError, type ChatMessage } from '../../engine/tokenizer/chat-template.ts';
import type { Target } from '../generation/resolve.ts';

/** What a chat request (or a /tokenize of messages) says about its prompt, in vLLM's names. */
interface ChatPromptFields {
  messages: ChatMessage[];
  chat_template_kwargs?: Record<string, unknown> | null;
  add_generation_prompt?: boolean | null;
  continue_final_message?: boolean | null;
}

/**
 * The prompt text of a conversation for its resolved target: the adapter's own template wins;
 * else the base's, unless the adapter's task tokens need the default. A template that fails or
 * runs over its budget is the 422 its owner must fix.
 */
export function renderPrompt(target: Target, body: ChatPromptFields): string {
  try {
    return renderChat(body.messages, {
      template: target.adapter?.chatTemplate ?? (target.adapter?.taskTokens.length ? null : target.base.chatTemplate),
      taskTokens: target.adapter?.taskTokens,
      kwargs: body.chat_template_kwargs ?? undefined,
      addGenerationPrompt: body.add_generation_prompt ?? undefined,
      continueFinalMessage: body.continue_final_message ?? undefined,
    });
  } catch (e) {
    const code = e instanceof TemplateBudgetError ? 'template_budget_exceeded' : 'chat_template_error';
    throw new ApiError(422, (e as Error).message, code);
  }
}

import type { ComputeEvent } from '../../protocol/compute.ts';

/**
 * A request's choices across node streams. A node runs one prompt's n choices (its events name
 * their choice, `index`); a list of prompts on /v1/completions runs one node request per prompt,
 * merged here into one stream whose choices are numbered as OpenAI does: prompt * n + choice.
 */
type NodeEvent = ComputeEvent & { node?: string };
type DoneEvent = Extract<ComputeEvent, { type: 'done' }>;
export type ChoiceEnd = NonNullable<DoneEvent['choices']>[number];

/** Each choice's end, from a node's `done` (one without `choices` ran a single one). */
export function choicesOf(done: DoneEvent): ChoiceEnd[] {
  return (
    done.choices ?? [{ index: 0, finish_reason: done.finish_reason, completion_tokens: done.usage.completion_tokens }]
  );
}

/**
 * One stream of the prompts' streams, in the order their events come: token events renumbered,
 * then one `done` once every prompt is done (usage summed, every choice's end), or the first error.
 * Every prompt's first event is awaited before any is passed on, so that a node's refusal of any
 * prompt is still the request's HTTP error. Leaving early (or an error) calls `stop`, which should
 * abort the other prompts' node requests.
 */
export async function* mergePrompts(
  streams: Array<AsyncGenerator<NodeEvent>>,
  n: number,
  stop: () => void,
): AsyncGenerator<NodeEvent> {
  const ends: DoneEvent[] = [];
  const pending = new Map<number, Promise<readonly [number, IteratorResult<NodeEvent>]>>();
  const pull = (p: number) => {
    const next = streams[p].next().then((r) => [p, r] as const);
    next.catch(() => {}); // awaited by a race, unless the merge ends first
    pending.set(p, next);
  };
  try {
    const firsts = await Promise.all(streams.map((s) => s.next()));
    let ready = firsts.map((r, p) => [p, r] as const);
    for (;;) {
      for (const [p, r] of ready) {
        if (r.done) {
          const error = { message: 'the compute node ended the stream early', type: 'server_error' };
          yield { type: 'error', error: { ...error, code: 'compute_stream_broken' } };
          return;
        }
        const e = r.value;
        if (e.type === 'error') {
          yield e;
          return;
        }
        if (e.type === 'done') {
          ends[p] = e;
          continue;
        }
        yield { ...e, index: p * n + (e.index ?? 0) };
        pull(p);
      }
      if (!pending.size) break;
      const next = await Promise.race(pending.values());
      pending.delete(next[0]);
      ready = [next];
    }
    yield {
      type: 'done',
      // A prompt the node cut short cuts the whole request short (see honest() in complete.ts).
      finish_reason: ends.find((e) => e.finish_reason === 'cancelled')?.finish_reason ?? ends[0].finish_reason,
      usage: {
        prompt_tokens: ends.reduce((sum, e) => sum + e.usage.prompt_tokens, 0),
        completion_tokens: ends.reduce((sum, e) => sum + e.usage.completion_tokens, 0),
      },
      timing: ends[0].timing,
      choices: ends.flatMap((e, p) => choicesOf(e).map((c) => ({ ...c, index: p * n + c.index }))),
      node: firsts[0].value?.node,
    };
  } finally {
    stop();
    for (const s of streams) s.return(undefined).catch(() => {});
  }
}

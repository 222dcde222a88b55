/** How one streamed completion ended, as a client sees it. */
export type StreamOutcome =
  | { kind: 'done'; text: string }
  /** An honest failure: an error chunk in the stream, or an HTTP error with a JSON body before it. */
  | { kind: 'error'; code: string; at: number; tokens: number }
  /** Neither [DONE] nor an error: the stream broke off, or hung past the client's patience. */
  | { kind: 'lost'; why: string };

/**
 * Runs one streamed /v1/completions request and classifies its end. Text is accumulated from the
 * chunks; `at` is when the error arrived (performance.now()).
 */
export async function streamCompletion(
  url: string,
  key: string,
  body: object,
  timeoutMs: number,
): Promise<StreamOutcome> {
  let text = '';
  let tokens = 0;
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      const error = ((await res.json().catch(() => ({}))) as { error?: { code?: string } }).error;
      return { kind: 'error', code: error?.code ?? `http_${res.status}`, at: performance.now(), tokens } as const;
    }
    let buffered = '';
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      buffered += r.value;
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = buffered.slice(0, end).replace(/^data: ?/, '');
        buffered = buffered.slice(end + 2);
        if (data === '[DONE]') return { kind: 'done', text } as const;
        const chunk = JSON.parse(data) as { error?: { code?: string }; choices?: Array<{ text?: string }> };
        if (chunk.error) return { kind: 'error', code: chunk.error.code ?? 'error', at: performance.now(), tokens };
        text += chunk.choices?.[0]?.text ?? '';
        tokens++;
      }
    }
    return { kind: 'lost', why: 'ended without [DONE] or an error chunk' } as const;
  } catch (e) {
    const why = (e as Error).name === 'TimeoutError' ? 'hung' : `broke: ${(e as Error).message}`;
    return { kind: 'lost', why } as const;
  }
}

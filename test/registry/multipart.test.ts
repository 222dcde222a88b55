import { describe, expect, it } from 'vitest';
import { formDataBoundary, MultipartError, readMultipart } from '../../registry/multipart.ts';

const enc = new TextEncoder();

function streamOf(data: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= data.length) return c.close();
      c.enqueue(data.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>, boundary: string, chunk: number) {
  const parts: Array<{ name: string; filename?: string; type?: string; data: Uint8Array }> = [];
  for await (const p of readMultipart(streamOf(body as unknown as Uint8Array, chunk), boundary)) {
    parts.push({
      name: p.name,
      filename: p.filename,
      type: p.contentType,
      data: new Uint8Array(await new Response(p.body).arrayBuffer()),
    });
  }
  return parts;
}

async function encoded(form: FormData): Promise<{ bytes: Uint8Array; boundary: string }> {
  const res = new Response(form);
  return {
    bytes: new Uint8Array(await res.arrayBuffer()),
    boundary: formDataBoundary(res.headers.get('content-type'))!,
  };
}

describe('streaming multipart reader', () => {
  it('reads what FormData writes, whatever the chunking (boundaries split anywhere)', async () => {
    const binary = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
    // Content that nearly contains the boundary must pass through untouched.
    const form = new FormData();
    form.append('base', 'toy@1');
    form.append('card', 'line\r\n--not-the-boundary\r\n');
    form.append('file', new Blob([binary]), 'adapter.safetensors');
    form.append('file', new Blob([enc.encode('{"r": 4}')], { type: 'application/json' }), 'adapter_config.json');
    const { bytes, boundary } = await encoded(form);
    for (const chunk of [1, 2, 3, 7, 50, 4096, bytes.length]) {
      const parts = await collect(bytes as unknown as ReadableStream<Uint8Array>, boundary, chunk);
      expect(parts.map((p) => [p.name, p.filename ?? null])).toEqual([
        ['base', null],
        ['card', null],
        ['file', 'adapter.safetensors'],
        ['file', 'adapter_config.json'],
      ]);
      expect(new TextDecoder().decode(parts[1].data)).toBe('line\r\n--not-the-boundary\r\n');
      expect(Buffer.from(parts[2].data).equals(Buffer.from(binary))).toBe(true);
      expect(parts[3].type).toBe('application/json');
    }
  });

  it('skips parts the reader does not consume, and handles RFC 5987 file names', async () => {
    const raw = enc.encode(
      'preamble\r\n--b\r\nContent-Disposition: form-data; name="skip"\r\n\r\nignored\r\n' +
        '--b\r\nContent-Disposition: form-data; name="f"; filename*=UTF-8\'\'caf%C3%A9.json\r\n\r\n{}\r\n' +
        '--b--\r\nepilogue',
    );
    const names: string[] = [];
    for await (const p of readMultipart(streamOf(raw, 5), 'b')) {
      names.push(p.filename ?? p.name);
      if (p.filename) expect(await new Response(p.body).text()).toBe('{}');
    }
    expect(names).toEqual(['skip', 'café.json']);
  });

  it('fails clearly on truncated or malformed bodies', async () => {
    const cases = [
      '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nno end',
      'no boundary at all',
      '--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--',
      `--b\r\nContent-Disposition: form-data; name="x"${'y'.repeat(20000)}\r\n\r\nx\r\n--b--`,
    ];
    for (const text of cases) {
      const run = async () => {
        for await (const p of readMultipart(streamOf(enc.encode(text), 4), 'b'))
          await new Response(p.body).arrayBuffer();
      };
      await expect(run()).rejects.toBeInstanceOf(MultipartError);
    }
  });

  it('parses the boundary only from multipart/form-data', () => {
    expect(formDataBoundary('multipart/form-data; boundary=abc')).toBe('abc');
    expect(formDataBoundary('multipart/form-data; charset=utf-8; boundary="a b"')).toBe('a b');
    expect(formDataBoundary('multipart/mixed; boundary=abc')).toBeNull();
    expect(formDataBoundary('application/json')).toBeNull();
    expect(formDataBoundary('multipart/form-data')).toBeNull();
  });
});

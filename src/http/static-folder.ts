import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A folder's files answered by name, as the Worker's embedded dashboard answers them (src/edge/ui/embedded.ts):
 * GET `<any origin>/NAME` is the file NAME, 404 when there is none. Names are single path segments, so
 * nothing outside the folder can be asked for.
 */
export function staticFolder(dir: string): { fetch(url: string): Promise<Response> } {
  return {
    async fetch(url) {
      const name = decodeURIComponent(new URL(url).pathname.slice(1));
      if (!/^[\w-][\w.-]*$/.test(name)) return new Response(null, { status: 404 });
      try {
        return new Response(await readFile(join(dir, name)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Response(null, { status: 404 });
        throw e;
      }
    },
  };
}

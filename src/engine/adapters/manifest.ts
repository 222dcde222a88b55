/**
 * The text whose sha256 identifies an adapter version's whole content (all its files, not just the
 * weights: a LoRA's scale lives in adapter_config.json): one line `<file sha256><two spaces><file
 * name>\n` per file, sorted by name (byte order), exactly what `sha256sum` prints for those files,
 * so anyone can recompute it with `sha256sum $(ls | LC_ALL=C sort) | sha256sum`. The registry
 * assigns it; a compute node checks it before it serves the files.
 */
export function manifestText(files: ReadonlyArray<{ name: string; sha256: string }>): string {
  return [...files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.name}\n`)
    .join('');
}

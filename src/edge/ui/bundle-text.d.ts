// wrangler imports these as text (wrangler.toml [[rules]]); see embedded.ts.
declare module '*/dist/ui/app.js' {
  const text: string;
  export default text;
}
declare module '*/dist/ui/styles.css' {
  const text: string;
  export default text;
}

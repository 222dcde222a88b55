const NOSCRIPT =
  '<noscript><p>The dashboard needs JavaScript. The API itself is described at ' +
  '<a href="/openapi.json">/openapi.json</a>.</p></noscript>';

/**
 * The `/ui` page shell. It holds no data and no key: the modules under /ui/assets/ fetch
 * everything from the API with the key the user gives them.
 */
export const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Versa dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/assets/styles.css">
<script type="module" src="/ui/assets/app.js"></script>
</head>
<body>
<a class="skip" href="#view">Skip to content</a>
<header class="top">
  <a class="brand" href="#/adapters">Versa</a>
  <nav id="nav" aria-label="Sections"></nav>
  <div id="key-panel" class="key-panel" aria-live="polite"></div>
</header>
<main id="view" tabindex="-1"><p>Loading the dashboard…</p></main>
${NOSCRIPT}
</body>
</html>
`;

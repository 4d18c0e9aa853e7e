/**
 * The dashboard's static files at `/`: `index.html` for `/` (and for page navigations to paths without a file
 * extension, so client-side routes reload), correct content types, long-lived caching for Vite's hashed
 * `assets/`, and no way out of the directory (dot segments, encoded separators, dotfiles and symlinks leading
 * outside are all a 404). When the directory has no `index.html` yet, `/` explains how to build it.
 */
import { readFile, realpath, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Hono } from 'hono'
import { getMimeType } from 'hono/utils/mime'
import { rawPath, type ExporterEnv } from '../http.js'

/** The default dashboard directory: `@corral/dashboard`'s `dist/`, or undefined when the package is not installed. */
export function defaultDashboardDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url)
    return path.join(path.dirname(require.resolve('@corral/dashboard/package.json')), 'dist')
  } catch {
    return undefined
  }
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch)

export function notBuiltPage(dir: string | undefined): string {
  const where =
    dir === undefined
      ? 'The <code>@corral/dashboard</code> package is not installed next to the exporter.'
      : `No <code>index.html</code> in <code>${escapeHtml(dir)}</code> yet.`
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Corral exporter</title></head>
<body>
<h1>Corral exporter</h1>
<p>The dashboard is not built. ${where}</p>
<p>Run <code>npm run build</code> at the repository root (or <code>npm run build -w @corral/dashboard</code>), then reload this page.</p>
<p>Meanwhile: <a href="./metrics">/metrics</a>, <a href="./healthz">/healthz</a>, <a href="./api/regions">/api/regions</a>.</p>
</body>
</html>
`
}

/** The path's segments, decoded; undefined if any would escape the directory or cannot be decoded. */
function safeSegments(urlPath: string): string[] | undefined {
  const segments: string[] = []
  for (const raw of urlPath.split('/').slice(1)) {
    let segment: string
    try {
      segment = decodeURIComponent(raw)
    } catch {
      return undefined
    }
    if (/[/\\\0]/.test(segment) || segment.startsWith('.')) return undefined
    segments.push(segment)
  }
  return segments
}

const within = (root: string, file: string) => file === root || file.startsWith(root + path.sep)

async function fileAt(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile()
  } catch {
    return false
  }
}

/**
 * `dir`: the directory to serve, or undefined when none could be found (then `/` answers the build hint).
 * Registered last, for GET and HEAD only; `/api/*` is never served from here.
 */
export function dashboardRoutes(dir: string | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  const root = dir === undefined ? undefined : path.resolve(dir)

  app.get('*', async (c, next) => {
    // relative to where the exporter is mounted (`app.route('/corral', createExporter())`)
    const base = c.req.routePath.replace(/\/?\*$/, '')
    const fullPath = rawPath(c.req.url)
    // the page's relative asset URLs need the trailing slash
    if (base !== '' && fullPath === base) return c.redirect(`${base}/`, 308)
    const urlPath = base !== '' && fullPath.startsWith(base) ? fullPath.slice(base.length) || '/' : fullPath
    if (urlPath === '/api' || urlPath.startsWith('/api/')) return next()
    const segments = safeSegments(urlPath)
    if (segments === undefined) return next()
    const wantsPage = segments.length === 0 || segments.at(-1) === '' || segments.at(-1) === 'index.html'
    const navigation =
      wantsPage || (!/\.[^.]+$/.test(segments.at(-1) ?? '') && (c.req.header('accept') ?? '').includes('text/html'))

    const index = root === undefined ? undefined : path.join(root, 'index.html')
    if (root === undefined || index === undefined || !(await fileAt(index))) {
      if (!navigation) return next()
      c.header('Cache-Control', 'no-store')
      c.header('Content-Type', 'text/html; charset=utf-8')
      return c.body(notBuiltPage(root), 200)
    }

    let file = path.join(root, ...segments.filter((segment) => segment !== ''))
    if (wantsPage || !(await fileAt(file))) {
      if (!navigation) return next()
      file = index
    }
    let real: string
    try {
      real = await realpath(file)
      if (!within(await realpath(root), real)) return next()
    } catch {
      return next()
    }
    const body = await readFile(real)
    const relative = path.relative(root, file).split(path.sep)
    c.header('Content-Type', getMimeType(file) ?? 'application/octet-stream')
    c.header('Cache-Control', relative[0] === 'assets' ? 'public, max-age=31536000, immutable' : 'no-cache')
    return c.body(body, 200)
  })

  return app
}

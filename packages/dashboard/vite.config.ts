import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'

/** Where `npm run dev` forwards API calls: a running exporter (`startExporter()` listens on 9464 by default). */
const exporterUrl = process.env.CORRAL_EXPORTER_URL ?? 'http://127.0.0.1:9464'

// The proxy keeps the browser's Host header (no changeOrigin), so the exporter's cross-site check sees the
// dashboard's own origin on POST requests, as it does in production where the exporter serves the page itself.
const proxied = { target: exporterUrl, changeOrigin: false }

export default defineConfig({
  // The exporter serves dist/ at `/` (and a reverse proxy may mount it under a prefix): relative asset URLs only.
  base: './',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': proxied,
      '/metrics': proxied,
      '/healthz': proxied,
    },
  },
  preview: {
    host: '127.0.0.1',
    proxy: {
      '/api': proxied,
      '/metrics': proxied,
      '/healthz': proxied,
    },
  },
})

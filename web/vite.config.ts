// Builds the setup page (web/) to static files in web/dist that runtime/api/setup-page.ts serves; no plug-ins, esbuild does the JSX.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    assetsInlineLimit: 0, // every asset a file from the box: nothing the CSP would have to allow as data:
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  logLevel: 'warn',
});

import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/** The dashboard's browser bundle: src/client → dist/client, served by the dashboard server. */
export default defineConfig({
  root: fileURLToPath(new URL('./src/client', import.meta.url)),
  base: '/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('./dist/client', import.meta.url)),
    emptyOutDir: true,
    // Plot and d3 are one chunk well under a megabyte; the warning would only be noise.
    chunkSizeWarningLimit: 1500,
  },
});

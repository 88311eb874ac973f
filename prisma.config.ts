import path from 'node:path';
import { defineConfig } from 'prisma/config';

// Prisma 7 takes the connection string from here, not from schema.prisma. The fallback is the
// embedded PGlite server's address (see libs/config EMBEDDED_PORTS), so `prisma migrate deploy`
// and `prisma studio` work against the default setup without extra environment.
export default defineConfig({
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
  datasource: {
    url: process.env['DETL_DATABASE_URL'] ?? 'postgresql://postgres:postgres@127.0.0.1:55432/postgres',
  },
});

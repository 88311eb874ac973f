#!/bin/sh
# Stand-in for the Prisma schema engine: generation never calls it, migrations are applied by libs/tracking.
echo "schema-engine stub: prisma migrate needs the real engine; use detl db migrate" >&2
exit 1

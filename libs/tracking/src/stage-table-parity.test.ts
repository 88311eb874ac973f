import { describe, expect, expectTypeOf, it } from 'vitest';
import { STAGE_TABLE, type TrackingStage } from '@detl/config';
import { STAGE_NAMES, type StageName } from './tracking-types';

// The stage table of @detl/config spells each stage's `stage` column value; the column's type is the
// Prisma `Stage` enum. They must be the same set, in the same (workflow) order.
describe('stage table and the Prisma Stage enum', () => {
  it('name the same stages in the same order', () => {
    expect(STAGE_TABLE.map((stage) => stage.trackingStage)).toEqual([...STAGE_NAMES]);
    expectTypeOf<TrackingStage>().toEqualTypeOf<StageName>();
  });
});

import { Semaphore } from '@yoco/common';
import { describe, expect, it } from 'vitest';

describe('Semaphore', () => {
  it('runs at most its permits at once, the rest in order, and frees a permit when a task fails', async () => {
    const s = new Semaphore(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (i: number) =>
      s.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        order.push(i);
        if (i === 1) throw new Error('task 1 fails');
        return i;
      });
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(task));
    expect(most).toBe(2);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(order.slice(0, 2).sort()).toEqual([0, 1]);
    expect(s.running).toBe(0);
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});

// @vitest-environment happy-dom
/**
 * useDocument's writes: the client's document writes bound to the hook's service and id, the same
 * functions on every render while those stay (safe in dependencies), new ones for another id.
 * (The writes themselves run against a real server in packages/client's document-writes test.)
 */
import { act, StrictMode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TributaryProvider, useDocument, type UseDocumentResult } from '../../src/index.ts';
import { createFakeClient } from '../fake-client.ts';

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

let root: Root | undefined;
afterEach(() => {
  act(() => root?.unmount());
  root = undefined;
});

describe('useDocument writes', () => {
  it('calls the client’s writes with the hook’s service and id, through functions that stay the same across renders', async () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Board({ id }: { readonly id: string }) {
      seen.push(useDocument('boards', id));
      return null;
    }
    root = createRoot(document.createElement('div'));
    const render = (id: string) =>
      act(() =>
        root!.render(
          <StrictMode>
            <TributaryProvider client={fake.client}>
              <Board id={id} />
            </TributaryProvider>
          </StrictMode>,
        ),
      );
    render('b1');
    const first = seen.at(-1)!;
    const increment = (board: { votes?: number }) => ({ ...board, votes: (board.votes ?? 0) + 1 });

    await first.create({ title: 'Plan' }, { idempotencyKey: 'k1' });
    await first.replace({ title: 'Plan 2' }, { expectedRevision: 1 });
    await first.merge({ done: true }, { expectedRevision: 2, idempotencyKey: 'k2' });
    await first.update(increment, { attempts: 3 });
    await first.remove({ expectedRevision: 4 });
    expect(fake.writes).toEqual([
      { method: 'createDocument', args: ['boards', { title: 'Plan' }, { idempotencyKey: 'k1', id: 'b1' }] },
      { method: 'replaceDocument', args: ['boards', 'b1', { title: 'Plan 2' }, { expectedRevision: 1 }] },
      { method: 'mergeDocument', args: ['boards', 'b1', { done: true }, { expectedRevision: 2, idempotencyKey: 'k2' }] },
      { method: 'updateDocument', args: ['boards', 'b1', increment, { attempts: 3 }] },
      { method: 'deleteDocument', args: ['boards', 'b1', { expectedRevision: 4 }] },
    ]);

    // A delivered document re-renders: the state is new, the functions the same.
    act(() => fake.documents[0]!.options.onDocument({ service: 'boards', id: 'b1', revision: 5, data: { title: 'x' }, operation: 'SNAPSHOT' }));
    const later = seen.at(-1)!;
    expect(later.revision).toBe(5);
    expect([later.create, later.replace, later.merge, later.remove, later.update]).toEqual([first.create, first.replace, first.merge, first.remove, first.update]);

    // Another document: functions bound to it.
    render('b2');
    expect(seen.at(-1)!.merge).not.toBe(first.merge);
    await seen.at(-1)!.merge({ done: false });
    expect(fake.writes.at(-1)).toEqual({ method: 'mergeDocument', args: ['boards', 'b2', { done: false }, undefined] });
  });
});

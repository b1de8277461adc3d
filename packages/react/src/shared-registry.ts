/**
 * One shared value per key, reference-counted, released after the current task.
 *
 * Why deferred: React StrictMode mounts, unmounts and mounts every component again in one go (and
 * Suspense or a fast route change can do the same); releasing at once would close the server
 * subscription and open a new one — the double subscription users of other SDKs keep reporting.
 * A lease released and taken again before the timer fires keeps the same value.
 */

export interface Lease<T> {
  readonly value: T;
  /** Idempotent; the value is disposed after the current task if no lease holds it then. */
  release(): void;
}

export interface Shared<T> {
  readonly value: T;
  /** Stops whatever the value runs (a subscription); called once, when the last lease is gone. */
  dispose(): void;
}

interface Entry<T> {
  readonly shared: Shared<T>;
  leases: number;
}

export class SharedRegistry<T> {
  readonly #entries = new Map<string, Entry<T>>();

  /** The value held for `key`, without taking a lease (for a render before the subscription). */
  peek(key: string): T | undefined {
    return this.#entries.get(key)?.shared.value;
  }

  /** A lease on the value for `key`, created by `create` when none is held. */
  acquire(key: string, create: () => Shared<T>): Lease<T> {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { shared: create(), leases: 0 };
      this.#entries.set(key, entry);
    }
    entry.leases += 1;
    const held = entry;
    let released = false;
    return {
      value: held.shared.value,
      release: () => {
        if (released) return;
        released = true;
        held.leases -= 1;
        if (held.leases === 0) setTimeout(() => this.#disposeIfUnused(key, held), 0);
      },
    };
  }

  /** Keys held now (a value per key: one server subscription each). */
  get size(): number {
    return this.#entries.size;
  }

  #disposeIfUnused(key: string, entry: Entry<T>): void {
    if (entry.leases > 0 || this.#entries.get(key) !== entry) return;
    this.#entries.delete(key);
    entry.shared.dispose();
  }
}

/** One registry per client and kind, created on first use (nothing at module load: SSR-safe). */
export function registryFor<C extends object, T>(registries: WeakMap<C, SharedRegistry<T>>, client: C): SharedRegistry<T> {
  let registry = registries.get(client);
  if (!registry) {
    registry = new SharedRegistry<T>();
    registries.set(client, registry);
  }
  return registry;
}

/** JSON with object keys sorted, so equal options make equal keys whatever their key order. */
export function stableKey(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableKey).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableKey(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

import type { Principal } from '../auth/principal.ts';
import type { ResolverContext } from './context.ts';

export function viewer(context: ResolverContext): Principal {
  return context.principal;
}

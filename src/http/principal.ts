/**
 * Who is calling: the principal a bearer key stands for. Scopes nest: `operator` implies every
 * other scope and is the registry operator's (it manages tenants and every tenant's keys, and sees
 * every tenant's adapters); `admin` implies read, generate and publish and manages its own tenant
 * only (its keys, its adapters).
 */
export const SCOPES = ['read', 'generate', 'publish', 'admin', 'operator'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  keyId: string;
  keyName: string;
  tenantId: string;
  scopes: Scope[];
}

export function hasScope(p: Principal, scope: Scope): boolean {
  if (p.scopes.includes('operator') || p.scopes.includes(scope)) return true;
  return scope !== 'operator' && p.scopes.includes('admin');
}

/** The registry operator: acts across tenants. A tenant's `admin` is not one. */
export function isOperator(p: Principal | null | undefined): boolean {
  return !!p && p.scopes.includes('operator');
}

/**
 * Who is calling: the principal a bearer key stands for. `admin` implies every other scope and is
 * the operator's scope (it manages tenants and keys and sees every tenant's adapters).
 */
export const SCOPES = ['read', 'generate', 'publish', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  keyId: string;
  keyName: string;
  tenantId: string;
  scopes: Scope[];
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes('admin') || p.scopes.includes(scope);
}

export function isAdmin(p: Principal | null | undefined): boolean {
  return !!p && p.scopes.includes('admin');
}

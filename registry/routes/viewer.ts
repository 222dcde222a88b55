import { isAdmin, type Principal } from '../auth.ts';
import type { Viewer } from '../queries/adapters.ts';

export function viewerOf(p: Principal): Viewer {
  return { tenantId: p.tenantId, admin: isAdmin(p) };
}

-- Custom SQL migration file, put your code below! --
-- Written through `drizzle-kit generate --custom` (data, and a trigger drizzle-kit does not model).
-- `admin` now manages one tenant; `operator` spans them. The bootstrap tenant's admin keys (VERSA_API_KEY,
-- the key of `versa start`) were the operator's: they keep that role.
UPDATE `api_keys` SET `scopes` = json_insert(`scopes`, '$[#]', 'operator')
WHERE `tenant_id` = 'default'
  AND EXISTS (SELECT 1 FROM json_each(`api_keys`.`scopes`) WHERE `value` = 'admin')
  AND NOT EXISTS (SELECT 1 FROM json_each(`api_keys`.`scopes`) WHERE `value` = 'operator');
--> statement-breakpoint
-- A version's behavior digest is set once (at publish, or by the sweep for older versions), then never changes.
CREATE TRIGGER `adapter_versions_behavior_sha256_once` BEFORE UPDATE OF `behavior_sha256` ON `adapter_versions`
WHEN OLD.`behavior_sha256` IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'adapter versions are immutable: their behavior digest is set once'); END;

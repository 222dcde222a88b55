-- Custom SQL migration file, put your code below! --
-- Written through `drizzle-kit generate --custom` (drizzle-kit does not model triggers).
-- What publishers and operators must be able to trust, enforced by the database itself:
-- a version's content never changes (only its status does), and history and events are append-only.
CREATE TRIGGER `adapter_versions_immutable` BEFORE UPDATE OF `id`, `adapter_id`, `version`, `base_version_id`, `kind`, `bottleneck`, `rank`, `target_modules`, `task_tokens`, `params`, `params_pct_of_base`, `bytes`, `sha256`, `weights_file`, `created_at`, `created_by` ON `adapter_versions`
BEGIN SELECT RAISE(ABORT, 'adapter versions are immutable: only their status may change'); END;
--> statement-breakpoint
CREATE TRIGGER `adapter_versions_no_delete` BEFORE DELETE ON `adapter_versions`
BEGIN SELECT RAISE(ABORT, 'adapter versions are never deleted: yank them'); END;
--> statement-breakpoint
CREATE TRIGGER `adapter_files_immutable` BEFORE UPDATE ON `adapter_files`
BEGIN SELECT RAISE(ABORT, 'adapter files are immutable'); END;
--> statement-breakpoint
CREATE TRIGGER `adapter_files_no_delete` BEFORE DELETE ON `adapter_files`
BEGIN SELECT RAISE(ABORT, 'adapter files are never deleted'); END;
--> statement-breakpoint
CREATE TRIGGER `base_model_versions_immutable` BEFORE UPDATE OF `id`, `model_id`, `version`, `architecture`, `config`, `tokenizer`, `params`, `bytes`, `sha256`, `created_at`, `created_by` ON `base_model_versions`
BEGIN SELECT RAISE(ABORT, 'base model versions are immutable: only their status may change'); END;
--> statement-breakpoint
CREATE TRIGGER `base_model_versions_no_delete` BEFORE DELETE ON `base_model_versions`
BEGIN SELECT RAISE(ABORT, 'base model versions are never deleted'); END;
--> statement-breakpoint
CREATE TRIGGER `base_model_files_immutable` BEFORE UPDATE ON `base_model_files`
BEGIN SELECT RAISE(ABORT, 'base model files are immutable'); END;
--> statement-breakpoint
CREATE TRIGGER `base_model_files_no_delete` BEFORE DELETE ON `base_model_files`
BEGIN SELECT RAISE(ABORT, 'base model files are never deleted'); END;
--> statement-breakpoint
CREATE TRIGGER `alias_history_append_only_update` BEFORE UPDATE ON `alias_history`
BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END;
--> statement-breakpoint
CREATE TRIGGER `alias_history_append_only_delete` BEFORE DELETE ON `alias_history`
BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END;
--> statement-breakpoint
CREATE TRIGGER `events_append_only_update` BEFORE UPDATE ON `events`
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
--> statement-breakpoint
CREATE TRIGGER `events_append_only_delete` BEFORE DELETE ON `events`
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

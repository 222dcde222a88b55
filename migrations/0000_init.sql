CREATE TABLE `adapter_files` (
	`version_id` text NOT NULL,
	`name` text NOT NULL,
	`sha256` text NOT NULL,
	`bytes` integer NOT NULL,
	PRIMARY KEY(`version_id`, `name`),
	FOREIGN KEY (`version_id`) REFERENCES `adapter_versions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `adapter_files_sha256_idx` ON `adapter_files` (`sha256`);--> statement-breakpoint
CREATE TABLE `adapter_versions` (
	`id` text PRIMARY KEY NOT NULL,
	`adapter_id` text NOT NULL,
	`version` integer NOT NULL,
	`base_version_id` text NOT NULL,
	`kind` text NOT NULL,
	`bottleneck` integer,
	`rank` integer,
	`target_modules` text NOT NULL,
	`task_tokens` text NOT NULL,
	`params` integer NOT NULL,
	`params_pct_of_base` real NOT NULL,
	`bytes` integer NOT NULL,
	`sha256` text NOT NULL,
	`weights_file` text NOT NULL,
	`dataset` text,
	`training_notes` text,
	`license` text,
	`card` text,
	`metrics` text,
	`tags` text NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text,
	FOREIGN KEY (`adapter_id`) REFERENCES `adapters`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`base_version_id`) REFERENCES `base_model_versions`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`created_by`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "adapter_versions_version_positive" CHECK("adapter_versions"."version" > 0)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `adapter_versions_adapter_version_idx` ON `adapter_versions` (`adapter_id`,`version`);--> statement-breakpoint
CREATE INDEX `adapter_versions_base_idx` ON `adapter_versions` (`base_version_id`);--> statement-breakpoint
CREATE TABLE `adapters` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`tenant_id` text NOT NULL,
	`visibility` text DEFAULT 'private' NOT NULL,
	`task` text,
	`description` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `adapters_name_unique` ON `adapters` (`name`);--> statement-breakpoint
CREATE INDEX `adapters_tenant_idx` ON `adapters` (`tenant_id`);--> statement-breakpoint
CREATE INDEX `adapters_task_idx` ON `adapters` (`task`);--> statement-breakpoint
CREATE TABLE `alias_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`adapter_id` text NOT NULL,
	`alias` text NOT NULL,
	`from_version` integer,
	`to_version` integer NOT NULL,
	`reason` text,
	`moved_at` integer NOT NULL,
	`moved_by` text,
	FOREIGN KEY (`adapter_id`) REFERENCES `adapters`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`moved_by`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `alias_history_alias_idx` ON `alias_history` (`adapter_id`,`alias`,`id`);--> statement-breakpoint
CREATE TABLE `aliases` (
	`adapter_id` text NOT NULL,
	`name` text NOT NULL,
	`version` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`updated_by` text,
	PRIMARY KEY(`adapter_id`, `name`),
	FOREIGN KEY (`adapter_id`) REFERENCES `adapters`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`updated_by`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`key_hash` text NOT NULL,
	`key_prefix` text NOT NULL,
	`scopes` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash_idx` ON `api_keys` (`key_hash`);--> statement-breakpoint
CREATE INDEX `api_keys_tenant_idx` ON `api_keys` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `base_model_files` (
	`version_id` text NOT NULL,
	`name` text NOT NULL,
	`sha256` text NOT NULL,
	`bytes` integer NOT NULL,
	PRIMARY KEY(`version_id`, `name`),
	FOREIGN KEY (`version_id`) REFERENCES `base_model_versions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `base_model_versions` (
	`id` text PRIMARY KEY NOT NULL,
	`model_id` text NOT NULL,
	`version` integer NOT NULL,
	`architecture` text NOT NULL,
	`config` text NOT NULL,
	`tokenizer` text,
	`params` integer NOT NULL,
	`bytes` integer NOT NULL,
	`sha256` text NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`notes` text,
	`created_at` integer NOT NULL,
	`created_by` text,
	FOREIGN KEY (`model_id`) REFERENCES `base_models`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`created_by`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "base_model_versions_version_positive" CHECK("base_model_versions"."version" > 0)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `base_model_versions_model_version_idx` ON `base_model_versions` (`model_id`,`version`);--> statement-breakpoint
CREATE TABLE `base_models` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`tenant_id` text NOT NULL,
	`description` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `base_models_name_unique` ON `base_models` (`name`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`type` text NOT NULL,
	`created_at` integer NOT NULL,
	`tenant_id` text,
	`key_id` text,
	`adapter` text,
	`adapter_version` integer,
	`base` text,
	`experiment_id` text,
	`arm` text,
	`unit` text,
	`completion_id` text,
	`data` text
);
--> statement-breakpoint
CREATE INDEX `events_type_time_idx` ON `events` (`type`,`created_at`);--> statement-breakpoint
CREATE INDEX `events_experiment_idx` ON `events` (`experiment_id`);--> statement-breakpoint
CREATE INDEX `events_completion_idx` ON `events` (`completion_id`);--> statement-breakpoint
CREATE TABLE `experiment_arms` (
	`experiment_id` text NOT NULL,
	`position` integer NOT NULL,
	`name` text NOT NULL,
	`version` integer,
	`alias` text,
	`weight` real NOT NULL,
	PRIMARY KEY(`experiment_id`, `position`),
	FOREIGN KEY (`experiment_id`) REFERENCES `experiments`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "experiment_arms_target" CHECK(("experiment_arms"."version" IS NULL) <> ("experiment_arms"."alias" IS NULL)),
	CONSTRAINT "experiment_arms_weight" CHECK("experiment_arms"."weight" >= 0)
);
--> statement-breakpoint
CREATE TABLE `experiments` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`adapter_id` text NOT NULL,
	`status` text DEFAULT 'draft' NOT NULL,
	`killed` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`created_by` text,
	FOREIGN KEY (`adapter_id`) REFERENCES `adapters`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`created_by`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `experiments_adapter_idx` ON `experiments` (`adapter_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `experiments_one_running_idx` ON `experiments` (`adapter_id`) WHERE status = 'running';--> statement-breakpoint
CREATE TABLE `tenants` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL
);

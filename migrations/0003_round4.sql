CREATE TABLE `blob_deletions` (
	`sha256` text PRIMARY KEY NOT NULL,
	`claimed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `blob_leases` (
	`sha256` text NOT NULL,
	`upload_id` text NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`sha256`, `upload_id`)
);
--> statement-breakpoint
CREATE INDEX `blob_leases_upload_idx` ON `blob_leases` (`upload_id`);--> statement-breakpoint
CREATE TABLE `experiment_feedback` (
	`completion_id` text NOT NULL,
	`metric` text NOT NULL,
	`value` real NOT NULL,
	PRIMARY KEY(`completion_id`, `metric`)
);
--> statement-breakpoint
CREATE TABLE `experiment_histogram` (
	`experiment_id` text NOT NULL,
	`arm` integer NOT NULL,
	`kind` text NOT NULL,
	`bucket` integer NOT NULL,
	`count` integer NOT NULL,
	PRIMARY KEY(`experiment_id`, `arm`, `kind`, `bucket`)
);
--> statement-breakpoint
CREATE TABLE `experiment_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`experiment_id` text NOT NULL,
	`kind` text NOT NULL,
	`detail` text NOT NULL,
	`at` integer NOT NULL,
	`by_key` text,
	FOREIGN KEY (`experiment_id`) REFERENCES `experiments`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`by_key`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `experiment_history_experiment_idx` ON `experiment_history` (`experiment_id`,`id`);--> statement-breakpoint
CREATE TABLE `experiment_moments` (
	`experiment_id` text NOT NULL,
	`arm` integer NOT NULL,
	`stat` text NOT NULL,
	`sx` real NOT NULL,
	`sxx` real NOT NULL,
	`sy` real NOT NULL,
	`syy` real NOT NULL,
	`sxy` real NOT NULL,
	PRIMARY KEY(`experiment_id`, `arm`, `stat`)
);
--> statement-breakpoint
CREATE TABLE `experiment_periods` (
	`experiment_id` text NOT NULL,
	`period` integer NOT NULL,
	`weights` text NOT NULL,
	`started_at` integer NOT NULL,
	PRIMARY KEY(`experiment_id`, `period`),
	FOREIGN KEY (`experiment_id`) REFERENCES `experiments`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `experiment_unit_metrics` (
	`experiment_id` text NOT NULL,
	`unit` text NOT NULL,
	`metric` text NOT NULL,
	`sum` real NOT NULL,
	`count` integer NOT NULL,
	PRIMARY KEY(`experiment_id`, `unit`, `metric`)
);
--> statement-breakpoint
CREATE TABLE `experiment_units` (
	`experiment_id` text NOT NULL,
	`unit` text NOT NULL,
	`arm` integer NOT NULL,
	`first_at` integer NOT NULL,
	`requests` integer NOT NULL,
	`errors` integer NOT NULL,
	`ok` integer NOT NULL,
	`tokens` integer NOT NULL,
	`latency_ms` real NOT NULL,
	`ttft_ms` real NOT NULL,
	PRIMARY KEY(`experiment_id`, `unit`)
);
--> statement-breakpoint
CREATE TABLE `idempotency_keys` (
	`tenant_id` text NOT NULL,
	`key` text NOT NULL,
	`fingerprint` text NOT NULL,
	`version_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `key`),
	FOREIGN KEY (`version_id`) REFERENCES `adapter_versions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `idempotency_keys_created_idx` ON `idempotency_keys` (`created_at`);--> statement-breakpoint
ALTER TABLE `adapter_versions` ADD `chat_template` text;--> statement-breakpoint
ALTER TABLE `experiment_arms` ADD `resolved_version` integer;--> statement-breakpoint
ALTER TABLE `experiments` ADD `metrics` text;--> statement-breakpoint
ALTER TABLE `experiments` ADD `guardrails` text;--> statement-breakpoint
ALTER TABLE `experiments` ADD `auto_promote` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `experiments` ADD `period` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `experiments` ADD `started_at` integer;--> statement-breakpoint
ALTER TABLE `experiments` ADD `stopped_at` integer;--> statement-breakpoint
ALTER TABLE `experiments` ADD `stop_reason` text;
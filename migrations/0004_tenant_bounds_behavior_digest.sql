ALTER TABLE `adapter_versions` ADD `behavior_sha256` text;--> statement-breakpoint
ALTER TABLE `tenants` ADD `max_adapter_fraction` real;
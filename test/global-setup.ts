// Placeholder replaced by the storage work: starts the S3-protocol server the suite uses.
export default async function setup(): Promise<void> {}

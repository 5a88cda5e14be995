/**
 * PUT a file to a presigned URL with upload progress. fetch() cannot report upload progress, so this is the
 * one place that uses XMLHttpRequest. The URL carries its own signature; no API key is sent with it.
 */
export function putWithProgress(
  url: string,
  headers: Record<string, string>,
  body: Blob,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size, body.size);
        resolve();
      } else
        reject(new Error(`The upload was refused (HTTP ${xhr.status}). ${xhr.responseText.slice(0, 300)}`));
    };
    xhr.onerror = () => reject(new Error('The upload failed: the storage server could not be reached.'));
    xhr.onabort = () => reject(new DOMException('The upload was cancelled.', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

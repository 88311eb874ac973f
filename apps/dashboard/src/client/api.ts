import type {
  CompareResponse,
  ErrorResponse,
  FacetsResponse,
  GalleryResponse,
  RunDetailResponse,
  RunListResponse,
  ScreeningResponse,
  SweepCompareResponse,
  SweepListResponse,
} from '../api-types';

/** A failed API call, with the server's explanation when it gave one. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson<T>(path: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, { headers: { accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'the dashboard server did not answer. Is `detl dashboard` still running? Start it again, then reload this page.');
  }
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as ErrorResponse | null;
    throw new ApiError(response.status, body?.error ?? `${response.status} ${response.statusText}`);
  }
  return (await response.json()) as T;
}

export const fetchRuns = (search: URLSearchParams) => getJson<RunListResponse>(`/api/runs?${search.toString()}`);
export const fetchFacets = () => getJson<FacetsResponse>('/api/facets');
export const fetchRun = (id: string) => getJson<RunDetailResponse>(`/api/runs/${encodeURIComponent(id)}`);
export const fetchCompare = (ids: readonly string[]) => getJson<CompareResponse>(`/api/compare?ids=${ids.map(encodeURIComponent).join(',')}`);
export const fetchSweeps = (page = 1, pageSize = 20) => getJson<SweepListResponse>(`/api/sweeps?page=${page}&pageSize=${pageSize}`);
export const fetchSweepCompare = (id: string) => getJson<SweepCompareResponse>(`/api/sweeps/${encodeURIComponent(id)}/compare`);
export const fetchGallery = (id: string) => getJson<GalleryResponse>(`/api/runs/${encodeURIComponent(id)}/gallery`);
export const fetchScreening = (id: string) => getJson<ScreeningResponse>(`/api/runs/${encodeURIComponent(id)}/screening`);

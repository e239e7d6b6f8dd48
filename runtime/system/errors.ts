// API errors as values with a code; every HTTP error body is { error: { code, message } }.
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public details?: Record<string, unknown>) {
    super(message);
  }
}

export const notFound = (what: string, id: string) => new ApiError(404, `${what}_not_found`, `no ${what.replace(/_/g, ' ')} "${id}"`);
export const badRequest = (code: string, message: string, details?: Record<string, unknown>) => new ApiError(400, code, message, details);
export const conflict = (code: string, message: string, details?: Record<string, unknown>) => new ApiError(409, code, message, details);
/** A jobID that belongs to another owner (their job or their batch's listing): the same answer whatever it is, so nothing leaks. */
export const jobIdTaken = (id: string) => conflict('job_id_taken', `job ID ${id} is already in use; choose another jobID`);

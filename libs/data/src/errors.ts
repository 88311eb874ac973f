/**
 * Raised for every dataset problem a user can fix: a bad folder, a bad labels CSV, an unreadable
 * image, a split that cannot be made. The message always names what is wrong and where
 * (file, CSV line and column, or class), so a run that stops on it tells the user what to repair.
 */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  constructor(
    message: string,
    /** Where the problem is, when it is one place: a file path, optionally with line / column. */
    readonly location?: { file?: string; line?: number; column?: string },
  ) {
    super(message);
  }
}

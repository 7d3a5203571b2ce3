/* csv.h - a small RFC 4180 reader over a memory buffer, used for the meters
 * CSV (meters_csv, estate-ctl inventory import). Fields may be quoted, with
 * "" for a quote and line breaks inside quotes; records end with LF or CRLF;
 * blank lines are skipped; a UTF-8 byte order mark at the start is ignored.
 * No fixed buffers: fields grow as needed up to the caller's limits, and a
 * field or record beyond them is an error, not a truncation.
 * Nothing here prints or exits. */
#ifndef GW_CSV_H
#define GW_CSV_H

#include <stddef.h>

#include "estate.h"

struct csv_reader;

/* One record: fields[0..nfields-1], NUL-terminated strings owned by the
 * reader and valid until the next csv_reader_next() or csv_reader_free().
 * line is the 1-based line on which the record starts. */
struct csv_record {
    char **fields;
    size_t nfields;
    unsigned long line;
};

/* Reads data[0..len-1] (not copied: it must outlive the reader). max_field
 * is the longest field in bytes, max_fields the most fields in a record.
 * EST_ERR_NOMEM, or EST_OK and *out. */
est_err csv_reader_new(const char *data, size_t len, size_t max_field, size_t max_fields,
                       struct csv_reader **out);
void csv_reader_free(struct csv_reader *reader);

/* Next record: EST_OK and *record; EST_ERR_NOTFOUND at the end of the data;
 * EST_ERR_INVALID for malformed input, with csv_reader_error() saying why and
 * record->line where (the reader stays at the error: every later call fails
 * the same way); EST_ERR_NOMEM. */
est_err csv_reader_next(struct csv_reader *reader, struct csv_record *record);

/* Why the last call failed, e.g. "unterminated quoted field"; "" if it did not. */
const char *csv_reader_error(const struct csv_reader *reader);

/* Reads a whole regular file into a NUL-terminated malloc'd buffer (*data,
 * *len without the NUL). EST_ERR_IO (errno set; EINVAL for a FIFO, device
 * or other non-regular file, which is never opened blocking) when it cannot be read,
 * EST_ERR_FULL when larger than max_bytes, EST_ERR_NOMEM. */
est_err csv_read_file(const char *path, size_t max_bytes, char **data, size_t *len);

#endif

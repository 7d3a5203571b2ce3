/* csv.c - RFC 4180 reader over a memory buffer (see csv.h). A record is read
 * field by field into one growing buffer; each finished field is copied out,
 * so no line or field length is assumed anywhere. */
#include "csv.h"

#include "est_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct csv_reader {
    const char *data;
    size_t len;
    size_t pos;
    unsigned long line;      /* line of data[pos] */
    size_t max_field;
    size_t max_fields;
    char *buf;               /* the field being read */
    size_t buf_len, buf_cap;
    char **fields;           /* the current record */
    size_t nfields, fields_cap;
    const char *error;       /* static text; NULL = no error */
    unsigned long error_line;
};

est_err csv_reader_new(const char *data, size_t len, size_t max_field, size_t max_fields,
                       struct csv_reader **out)
{
    struct csv_reader *r = calloc(1, sizeof *r);
    if (!r)
        return EST_ERR_NOMEM;
    r->data = data;
    r->len = data ? len : 0;
    r->line = 1;
    r->max_field = max_field;
    r->max_fields = max_fields;
    if (r->len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        r->pos = 3;
    *out = r;
    return EST_OK;
}

static void free_fields(struct csv_reader *r)
{
    for (size_t i = 0; i < r->nfields; i++)
        free(r->fields[i]);
    r->nfields = 0;
}

void csv_reader_free(struct csv_reader *r)
{
    if (!r)
        return;
    free_fields(r);
    free(r->fields);
    free(r->buf);
    free(r);
}

const char *csv_reader_error(const struct csv_reader *r)
{
    return r->error ? r->error : "";
}

static est_err fail(struct csv_reader *r, const char *why, unsigned long line)
{
    r->error = why;
    r->error_line = line;
    return EST_ERR_INVALID;
}

/* Appends one byte to the field buffer, within max_field. */
static est_err buf_put(struct csv_reader *r, char c)
{
    if (r->buf_len >= r->max_field)
        return fail(r, "field too long", r->line);
    if (EST_VEC_RESERVE(r->buf, r->buf_cap, r->buf_len + 2) != EST_OK)
        return EST_ERR_NOMEM;
    r->buf[r->buf_len++] = c;
    return EST_OK;
}

/* Moves the field buffer into the record. */
static est_err field_end(struct csv_reader *r, unsigned long record_line)
{
    if (r->nfields >= r->max_fields)
        return fail(r, "too many fields", record_line);
    if (EST_VEC_RESERVE(r->fields, r->fields_cap, r->nfields + 1) != EST_OK)
        return EST_ERR_NOMEM;
    char *s = malloc(r->buf_len + 1);
    if (!s)
        return EST_ERR_NOMEM;
    if (r->buf_len)
        memcpy(s, r->buf, r->buf_len);
    s[r->buf_len] = '\0';
    r->fields[r->nfields++] = s;
    r->buf_len = 0;
    return EST_OK;
}

/* Reads a quoted field; pos is just past the opening quote. */
static est_err read_quoted(struct csv_reader *r)
{
    unsigned long opened = r->line;
    for (;;) {
        if (r->pos >= r->len)
            return fail(r, "unterminated quoted field", opened);
        char c = r->data[r->pos++];
        if (c == '"') {
            if (r->pos < r->len && r->data[r->pos] == '"') {
                r->pos++;
            } else {
                break;
            }
        } else if (c == '\n') {
            r->line++;
        } else if (c == '\0') {
            return fail(r, "NUL byte in data", r->line);
        }
        est_err e = buf_put(r, c);
        if (e != EST_OK)
            return e;
    }
    if (r->pos < r->len && !strchr(",\r\n", r->data[r->pos]))
        return fail(r, "unexpected character after a closing quote", r->line);
    return EST_OK;
}

static est_err read_plain(struct csv_reader *r)
{
    while (r->pos < r->len) {
        char c = r->data[r->pos];
        if (c == ',' || c == '\r' || c == '\n')
            break;
        if (c == '"')
            return fail(r, "quote inside an unquoted field", r->line);
        if (c == '\0')
            return fail(r, "NUL byte in data", r->line);
        est_err e = buf_put(r, c);
        if (e != EST_OK)
            return e;
        r->pos++;
    }
    return EST_OK;
}

static void skip_blank_lines(struct csv_reader *r)
{
    while (r->pos < r->len && (r->data[r->pos] == '\n' || r->data[r->pos] == '\r')) {
        if (r->data[r->pos] == '\n')
            r->line++;
        else if (r->pos + 1 >= r->len || r->data[r->pos + 1] != '\n')
            r->line++; /* a lone CR ends a line too */
        r->pos++;
    }
}

est_err csv_reader_next(struct csv_reader *r, struct csv_record *record)
{
    free_fields(r);
    if (r->error) {
        record->line = r->error_line;
        return EST_ERR_INVALID;
    }
    skip_blank_lines(r);
    if (r->pos >= r->len)
        return EST_ERR_NOTFOUND;
    unsigned long start = r->line;
    record->line = start;
    for (;;) {
        r->buf_len = 0;
        est_err e;
        if (r->data[r->pos] == '"') {
            r->pos++;
            e = read_quoted(r);
        } else {
            e = read_plain(r);
        }
        if (e == EST_OK)
            e = field_end(r, start);
        if (e != EST_OK) {
            if (e == EST_ERR_INVALID)
                record->line = r->error_line;
            free_fields(r);
            return e;
        }
        if (r->pos >= r->len)
            break;
        char c = r->data[r->pos++];
        if (c == ',') {
            if (r->pos >= r->len) { /* "a," at the very end: one more empty field */
                r->buf_len = 0;
                if ((e = field_end(r, start)) != EST_OK) {
                    record->line = r->error_line;
                    free_fields(r);
                    return e;
                }
                break;
            }
            continue;
        }
        if (c == '\r' && r->pos < r->len && r->data[r->pos] == '\n')
            r->pos++;
        r->line++;
        break;
    }
    record->fields = r->fields;
    record->nfields = r->nfields;
    return EST_OK;
}

est_err csv_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    /* O_NONBLOCK: a FIFO or device must not hang the open; only regular files are read */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return EST_ERR_IO;
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno
              : S_ISREG(st.st_mode) ? 0
              : S_ISDIR(st.st_mode) ? EISDIR
                                    : EINVAL;
    if (err) {
        close(fd);
        errno = err;
        return EST_ERR_IO;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return EST_ERR_IO;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    est_err result = EST_OK;
    if (!buf) {
        fclose(f);
        return EST_ERR_NOMEM;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes + 1) {
                result = EST_ERR_FULL;
                break;
            }
            if (EST_VEC_RESERVE(buf, cap, cap + 1) != EST_OK) {
                result = EST_ERR_NOMEM;
                break;
            }
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > max_bytes) {
            result = EST_ERR_FULL;
            break;
        }
        if (got == 0) {
            if (ferror(f)) {
                result = EST_ERR_IO;
                if (!errno)
                    errno = EIO;
            }
            break;
        }
    }
    fclose(f);
    if (result != EST_OK) {
        free(buf);
        return result;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return EST_OK;
}

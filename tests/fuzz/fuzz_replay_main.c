/* fuzz_replay_main.c - replays fuzz corpora without libFuzzer: calls
 * LLVMFuzzerTestOneInput on every regular file of each directory argument, so
 * CTest runs the corpora in ordinary (gcc) builds. Exit 0 when all ran and
 * every directory held at least one input. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into a fresh buffer; NULL on failure. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t capacity = 4096, used = 0;
    uint8_t *data = malloc(capacity);
    while (data != NULL) {
        used += fread(data + used, 1, capacity - used, f);
        if (used < capacity)
            break;
        uint8_t *bigger = realloc(data, capacity * 2);
        if (bigger == NULL) {
            free(data);
            data = NULL;
            break;
        }
        data = bigger;
        capacity *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        return NULL;
    }
    *size = used;
    return data;
}

/* Runs every regular file of one directory; the count run, or -1. */
static int replay_dir(const char *name)
{
    DIR *dir = opendir(name);
    if (dir == NULL) {
        perror(name);
        return -1;
    }
    int ran = 0, status = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t length = strlen(name) + strlen(entry->d_name) + 2;
        char *path = malloc(length);
        if (path == NULL) {
            status = -1;
            break;
        }
        snprintf(path, length, "%s/%s", name, entry->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t size = 0;
            uint8_t *data = read_file(path, &size);
            if (data == NULL) {
                fprintf(stderr, "%s: cannot read\n", path);
                status = -1;
            } else {
                LLVMFuzzerTestOneInput(data, size);
                free(data);
                ran++;
            }
        }
        free(path);
    }
    closedir(dir);
    printf("replayed %d inputs from %s\n", ran, name);
    return status < 0 ? -1 : ran;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i]) <= 0)
            status = 1;
    return status;
}

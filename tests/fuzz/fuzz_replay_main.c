/* fuzz_replay_main.c - replays a fuzz corpus without libFuzzer: calls
 * LLVMFuzzerTestOneInput on every regular file of the directory argv[1], so
 * CTest runs the corpora in ordinary (gcc) builds. Exit 0 when all ran. */
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

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    unsigned ran = 0;
    int status = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t length = strlen(argv[1]) + strlen(entry->d_name) + 2;
        char *path = malloc(length);
        if (path == NULL) {
            status = 1;
            break;
        }
        snprintf(path, length, "%s/%s", argv[1], entry->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t size = 0;
            uint8_t *data = read_file(path, &size);
            if (data == NULL) {
                fprintf(stderr, "%s: cannot read\n", path);
                status = 1;
            } else {
                LLVMFuzzerTestOneInput(data, size);
                free(data);
                ran++;
            }
        }
        free(path);
    }
    closedir(dir);
    printf("replayed %u inputs from %s\n", ran, argv[1]);
    return ran == 0 ? 1 : status;
}

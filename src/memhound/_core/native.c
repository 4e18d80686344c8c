/* native.c: interception of libc's allocator as extensions and libraries
 * call it (issue 5).
 *
 * Mechanism: the GOT entries (JUMP_SLOT and GLOB_DAT relocations) of the
 * hooked symbols in every loaded object are pointed at the wrappers below;
 * dlopen's entry too, so objects loaded later are patched when it returns,
 * and dlsym's, so a symbol looked up at run time (ctypes.CDLL(None).malloc)
 * is the wrapper.  Objects left alone, see skip_reason(): memhound itself,
 * the allocator's object (libc, or a preloaded malloc), the dynamic loader,
 * and the interpreter (libpython, the executable: its memory is the PEP 445
 * domains'), whose dlopen entry alone is patched so that imports are seen.
 * State: the patch records, guarded by patch_lock (a pthread mutex taken
 * only by start/stop/dlopen, never on an allocation path; fork handlers
 * below).  The wrappers keep no state: hooks.c's native functions do.
 */
#include "native.h" /* Python.h first: pyconfig.h defines _GNU_SOURCE */

#include <dlfcn.h>
#include <stdio.h>
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"
#include "nativestack.h"
#include "rawmem.h"

/* ---- the wrappers ------------------------------------------------------
 *
 * Each calls libc's function first (through memhound's own GOT, never
 * patched), then, if mh_hooks_native_enter() says so, does its
 * bookkeeping; a free forgets the block before libc gets it back.  Before
 * start, after stop and inside memhound's own work they only pass through.
 */

/* Innermost frames of a captured native stack that are memhound's:
 * nativestack.c drops every leading frame inside memhound's object, so
 * this only needs to be at least 0. */
#define STACK_SKIP 0

static inline void
record(void *ptr, size_t size)
{
    if (mh_hooks_native_alloc(ptr, size) && mh_nstack_enabled()) {
        mh_nstack_record((uintptr_t)ptr, size, STACK_SKIP);
    }
}

static inline void
forget(void *ptr)
{
    mh_hooks_native_free(ptr);
    if (ptr != NULL && mh_nstack_enabled()) {
        mh_nstack_forget((uintptr_t)ptr);
    }
}

static void *
wrap_malloc(size_t size)
{
    void *ptr = malloc(size);
    record(ptr, size);
    return ptr;
}

static void *
wrap_calloc(size_t nelem, size_t elsize)
{
    void *ptr = calloc(nelem, elsize);
    /* calloc succeeded, so nelem * elsize did not overflow. */
    record(ptr, nelem * elsize);
    return ptr;
}

/* realloc and reallocarray: the old block is forgotten first and put back
 * if the call fails (realloc(p, 0) frees p and returns NULL: not put
 * back).  A block in a nursery, reallocated by a thread without the GIL,
 * is forgotten only once libc's realloc has succeeded (HELD, hooks.h). */
static void *
realloc_common(void *old, size_t nelem, size_t elsize, int is_array)
{
    if (!mh_hooks_native_enter()) {
        return is_array ? reallocarray(old, nelem, elsize)
                        : realloc(old, elsize);
    }
    size_t size = is_array ? nelem * elsize : elsize;
    mh_trace_t previous;
    int had = old != NULL
                  ? mh_hooks_native_forget_old((uintptr_t)old, &previous)
                  : 0;
    int stacks = mh_nstack_enabled();
    void *ptr =
        is_array ? reallocarray(old, nelem, elsize) : realloc(old, elsize);
    if (had == MH_HOOKS_NOTED) {
        mh_hooks_native_settle((uintptr_t)old, ptr != NULL || size == 0);
        had = 0;
    }
    mh_trace_t recorded = {0};
    if (ptr != NULL) {
        mh_hooks_native_record(ptr, size, &recorded);
    }
    else if (had && size != 0) {
        mh_hooks_native_restore(&previous);
    }
    mh_hooks_native_leave();
    if (stacks) {
        /* A failed realloc keeps the old block, and its stack. */
        if (old != NULL && (ptr != NULL || size == 0)) {
            mh_nstack_forget((uintptr_t)old);
        }
        if (recorded.ptr != 0) {
            mh_nstack_record(recorded.ptr, recorded.size, STACK_SKIP);
        }
    }
    return ptr;
}

static void *
wrap_realloc(void *old, size_t size)
{
    return realloc_common(old, 1, size, 0);
}

static void *
wrap_reallocarray(void *old, size_t nelem, size_t elsize)
{
    size_t total;
    if (__builtin_mul_overflow(nelem, elsize, &total)) {
        return reallocarray(old, nelem, elsize); /* fails with ENOMEM */
    }
    return realloc_common(old, nelem, elsize, 1);
}

static void
wrap_free(void *ptr)
{
    forget(ptr);
    free(ptr);
}

static int
wrap_posix_memalign(void **out, size_t alignment, size_t size)
{
    int result = posix_memalign(out, alignment, size);
    if (result == 0) {
        record(*out, size);
    }
    return result;
}

static void *
wrap_aligned_alloc(size_t alignment, size_t size)
{
    void *ptr = aligned_alloc(alignment, size);
    record(ptr, size);
    return ptr;
}

static void *
wrap_memalign(size_t alignment, size_t size)
{
    void *ptr = memalign(alignment, size);
    record(ptr, size);
    return ptr;
}

static void *
wrap_valloc(size_t size)
{
    void *ptr = valloc(size);
    record(ptr, size);
    return ptr;
}

static void *
wrap_pvalloc(size_t size)
{
    void *ptr = pvalloc(size);
    record(ptr, size);
    return ptr;
}

/* libc's strdup calls its malloc internally, out of the GOT's reach. */
static char *
wrap_strdup(const char *s)
{
    char *copy = strdup(s);
    if (copy != NULL) {
        record(copy, strlen(copy) + 1);
    }
    return copy;
}

static char *
wrap_strndup(const char *s, size_t n)
{
    char *copy = strndup(s, n);
    if (copy != NULL) {
        record(copy, strlen(copy) + 1);
    }
    return copy;
}

/* Anonymous mappings only: a file mapping is not heap memory. */
static void *
wrap_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    void *ptr = mmap(addr, length, prot, flags, fd, offset);
    if (ptr != MAP_FAILED && (flags & MAP_ANONYMOUS)) {
        record(ptr, length);
    }
    return ptr;
}

static int
wrap_munmap(void *addr, size_t length)
{
    if (addr != NULL && mh_hooks_native_enter()) {
        mh_trace_t removed;
        mh_hooks_native_forget((uintptr_t)addr, length ? length : 1, &removed);
        mh_hooks_native_leave();
        if (mh_nstack_enabled()) {
            mh_nstack_forget((uintptr_t)addr);
        }
    }
    return munmap(addr, length);
}

static void *wrap_dlopen(const char *file, int mode);
static void *wrap_dlsym(void *handle, const char *name);

/* ---- the one list of hooked symbols ------------------------------------ */

enum { ALLOC = 1, LOADER = 2 };

typedef struct {
    const char *name;
    void *wrapper;
    int kind; /* ALLOC: patched in extensions and libraries; LOADER:
                 dlopen, patched in the interpreter too; dlsym: ALLOC */
} hooked_t;

static const hooked_t hooked[] = {
    {"malloc", (void *)wrap_malloc, ALLOC},
    {"calloc", (void *)wrap_calloc, ALLOC},
    {"realloc", (void *)wrap_realloc, ALLOC},
    {"reallocarray", (void *)wrap_reallocarray, ALLOC},
    {"free", (void *)wrap_free, ALLOC},
    {"posix_memalign", (void *)wrap_posix_memalign, ALLOC},
    {"aligned_alloc", (void *)wrap_aligned_alloc, ALLOC},
    {"memalign", (void *)wrap_memalign, ALLOC},
    {"valloc", (void *)wrap_valloc, ALLOC},
    {"pvalloc", (void *)wrap_pvalloc, ALLOC},
    {"strdup", (void *)wrap_strdup, ALLOC},
    {"strndup", (void *)wrap_strndup, ALLOC},
    {"mmap", (void *)wrap_mmap, ALLOC},
    {"mmap64", (void *)wrap_mmap, ALLOC},
    {"munmap", (void *)wrap_munmap, ALLOC},
    {"dlsym", (void *)wrap_dlsym, ALLOC},
    {"dlopen", (void *)wrap_dlopen, LOADER},
};
#define NHOOKED ((int)(sizeof(hooked) / sizeof(hooked[0])))

static int
hooked_index(const char *name)
{
    /* Every hooked name starts with one of these letters; most symbols
     * are rejected by the first test. */
    if (strchr("macrfpsvd", name[0]) == NULL || name[0] == '\0') {
        return -1;
    }
    for (int i = 0; i < NHOOKED; i++) {
        if (strcmp(name, hooked[i].name) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- patch records ----------------------------------------------------- */

typedef struct {
    uintptr_t slot;     /* GOT entry address */
    uintptr_t original; /* its value before patching */
    uintptr_t wrapper;  /* the value written */
    uintptr_t dynamic;  /* PT_DYNAMIC address: the object's identity */
    int loaded;         /* scratch of prune_unloaded_locked */
} patch_t;

/* Guarded by patch_lock. */
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;
static patch_t *patches;
static size_t npatches, patches_cap;
static int active;            /* start()ed and not stop()ped */
static uint64_t failed_slots; /* mprotect refused: left unpatched */
static uint64_t rescans;      /* dlopens that rescanned */

/* Addresses that identify the objects to skip, set by start. */
static uintptr_t own_addr, alloc_addr, python_addr;

static int
object_contains(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) {
            continue;
        }
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (addr >= start && addr < start + ph->p_memsz) {
            return 1;
        }
    }
    return 0;
}

/* Which symbol kinds to patch in this object: 0 (none), LOADER or
 * ALLOC | LOADER. */
static int
kinds_for(const struct dl_phdr_info *info, int first)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    /* libc by name too: under a preloaded allocator (ASan) it is not the
     * one that provides malloc, but its internal calls are not a
     * library's allocations either. */
    if (object_contains(info, own_addr) || object_contains(info, alloc_addr) ||
        strncmp(base, "libc.so", 7) == 0 ||
        strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld64", 4) == 0 ||
        strncmp(base, "linux-vdso", 10) == 0 ||
        strncmp(base, "linux-gate", 10) == 0) {
        return 0;
    }
    if (first || name[0] == '\0' || object_contains(info, python_addr)) {
        return LOADER; /* the interpreter */
    }
    return ALLOC | LOADER;
}

static int
add_patch(const patch_t *patch)
{
    if (mh_rawmem_reserve((void **)&patches, &patches_cap, npatches + 1,
                          sizeof(patch_t)) < 0) {
        return -1;
    }
    patches[npatches++] = *patch;
    return 0;
}

/* Write value into a GOT slot, making its page writable for the time of
 * the write when it is in the object's RELRO region (read-only once
 * relocated; ld.so protects the whole pages of [start, end) rounded
 * down).  Returns 0, or -1 when the page can't be made writable. */
static int
write_slot(uintptr_t slot, uintptr_t value, uintptr_t relro_start,
           uintptr_t relro_end)
{
    uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t page = slot & ~(page_size - 1);
    int readonly = page >= (relro_start & ~(page_size - 1)) &&
                   page < (relro_end & ~(page_size - 1));
    if (readonly &&
        mprotect((void *)page, page_size, PROT_READ | PROT_WRITE) != 0) {
        return -1;
    }
    __atomic_store_n((uintptr_t *)slot, value, __ATOMIC_RELEASE);
    if (readonly) {
        mprotect((void *)page, page_size, PROT_READ);
    }
    return 0;
}

typedef struct {
    uintptr_t addr, dynamic, relro_start, relro_end;
    const ElfW(Sym) * symtab;
    const char *strtab;
    size_t strsz;
} object_t;

/* The object's dynamic section and RELRO range; 0, or -1 when it has no
 * dynamic section. */
static int
object_open(const struct dl_phdr_info *info, object_t *obj)
{
    memset(obj, 0, sizeof(*obj));
    obj->addr = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) {
            obj->dynamic = info->dlpi_addr + ph->p_vaddr;
        }
        else if (ph->p_type == PT_GNU_RELRO) {
            obj->relro_start = info->dlpi_addr + ph->p_vaddr;
            obj->relro_end = obj->relro_start + ph->p_memsz;
        }
    }
    return obj->dynamic ? 0 : -1;
}

/* d_ptr values: ld.so relocates them in place for most objects, not for
 * some (the vDSO); an address below the load bias is still relative. */
static uintptr_t
dyn_ptr(const object_t *obj, ElfW(Addr) value)
{
    return value < obj->addr ? obj->addr + value : value;
}

/* Patch the slots of one relocation table. */
static void
patch_relocs(const object_t *obj, const ElfW(Rela) * rela, size_t count,
             int kinds)
{
    for (size_t i = 0; i < count; i++) {
        unsigned type = ELF64_R_TYPE(rela[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) {
            continue;
        }
        const ElfW(Sym) *sym = &obj->symtab[ELF64_R_SYM(rela[i].r_info)];
        if (sym->st_name >= obj->strsz || sym->st_shndx != SHN_UNDEF) {
            continue; /* defined here: the object's own function */
        }
        int h = hooked_index(obj->strtab + sym->st_name);
        if (h < 0 || !(hooked[h].kind & kinds)) {
            continue;
        }
        uintptr_t slot = obj->addr + rela[i].r_offset;
        uintptr_t wrapper = (uintptr_t)hooked[h].wrapper;
        uintptr_t value = __atomic_load_n((uintptr_t *)slot, __ATOMIC_ACQUIRE);
        if (value == wrapper) {
            continue; /* patched by an earlier scan */
        }
        patch_t patch = {slot, value, wrapper, obj->dynamic, 1};
        if (add_patch(&patch) < 0 ||
            write_slot(slot, wrapper, obj->relro_start, obj->relro_end) < 0) {
            if (npatches > 0 && patches[npatches - 1].slot == slot) {
                npatches--;
            }
            failed_slots++;
        }
    }
}

typedef struct {
    int index; /* objects seen so far */
} scan_t;

static int
patch_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    scan_t *scan = arg;
    int first = scan->index++ == 0;
    int kinds = kinds_for(info, first);
    object_t obj;
    if (kinds == 0 || object_open(info, &obj) < 0) {
        return 0;
    }
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_size = 0, rela_size = 0;
    for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)obj.dynamic;
         d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB:
            obj.symtab = (const ElfW(Sym) *)dyn_ptr(&obj, d->d_un.d_ptr);
            break;
        case DT_STRTAB:
            obj.strtab = (const char *)dyn_ptr(&obj, d->d_un.d_ptr);
            break;
        case DT_STRSZ:
            obj.strsz = d->d_un.d_val;
            break;
        case DT_JMPREL:
            jmprel = (const ElfW(Rela) *)dyn_ptr(&obj, d->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            jmprel_size = d->d_un.d_val;
            break;
        case DT_RELA:
            rela = (const ElfW(Rela) *)dyn_ptr(&obj, d->d_un.d_ptr);
            break;
        case DT_RELASZ:
            rela_size = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (obj.symtab == NULL || obj.strtab == NULL) {
        return 0;
    }
    if (jmprel != NULL) {
        patch_relocs(&obj, jmprel, jmprel_size / sizeof(ElfW(Rela)), kinds);
    }
    if (rela != NULL) {
        patch_relocs(&obj, rela, rela_size / sizeof(ElfW(Rela)), kinds);
    }
    return 0;
}

enum { MARK_LOADED, RESTORE };

/* For each record of the loaded object `info`: MARK_LOADED notes that it
 * is still loaded; RESTORE puts its slot back to the original value when
 * it still holds the wrapper (nothing else wrote it since).  patch_lock
 * held. */
static int
visit_records(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    int what = *(const int *)arg;
    object_t obj;
    if (object_open(info, &obj) < 0) {
        return 0;
    }
    for (size_t i = 0; i < npatches; i++) {
        patch_t *p = &patches[i];
        if (p->dynamic != obj.dynamic) {
            continue;
        }
        if (what == MARK_LOADED) {
            p->loaded = 1;
        }
        else if (__atomic_load_n((uintptr_t *)p->slot, __ATOMIC_ACQUIRE) ==
                 p->wrapper) {
            write_slot(p->slot, p->original, obj.relro_start, obj.relro_end);
        }
    }
    return 0;
}

/* Drop the records of objects no longer loaded (dlclose), so that their
 * unmapped slots are never written.  patch_lock held. */
static void
prune_unloaded_locked(void)
{
    for (size_t i = 0; i < npatches; i++) {
        patches[i].loaded = 0;
    }
    int what = MARK_LOADED;
    dl_iterate_phdr(visit_records, &what);
    size_t kept = 0;
    for (size_t i = 0; i < npatches; i++) {
        if (patches[i].loaded) {
            patches[kept++] = patches[i];
        }
    }
    npatches = kept;
}

static void
scan_locked(void)
{
    prune_unloaded_locked();
    scan_t scan = {0};
    dl_iterate_phdr(patch_object, &scan);
}

/* ---- dlopen / dlsym ---------------------------------------------------- */

/* The object holding addr, as a dlopen handle (glibc's handles are link
 * maps), or NULL. */
static void *
caller_handle(const void *addr)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1(addr, &info, (void **)&map, RTLD_DL_LINKMAP) == 0) {
        return NULL;
    }
    return map;
}

/* The library search path ld.so uses for a bare name dlopen'ed by the
 * object `handle`, malloc'ed (free it), or NULL. */
static Dl_serinfo *
serinfo_new(void *handle)
{
    Dl_serinfo size_info;
    if (handle == NULL ||
        dlinfo(handle, RTLD_DI_SERINFOSIZE, &size_info) != 0) {
        return NULL;
    }
    Dl_serinfo *info = malloc(size_info.dls_size);
    if (info == NULL) {
        return NULL;
    }
    memcpy(info, &size_info, sizeof(size_info));
    if (dlinfo(handle, RTLD_DI_SERINFO, info) != 0) {
        free(info);
        return NULL;
    }
    return info;
}

static int
serinfo_has(const Dl_serinfo *info, const char *dir)
{
    for (unsigned i = 0; info != NULL && i < info->dls_cnt; i++) {
        if (strcmp(info->dls_serpath[i].dls_name, dir) == 0) {
            return 1;
        }
    }
    return 0;
}

/* dlopen searches the *calling* object's RPATH/RUNPATH for a bare name;
 * called from here, it would search memhound's.  So a bare name not
 * loaded yet is first looked for in the directories the caller's search
 * path has and memhound's has not (RTLD_DI_SERINFO lists both), in the
 * caller's order; then it goes to dlopen as it was, whose search
 * (LD_LIBRARY_PATH, the cache, the system directories) is the same from
 * anywhere. */
static void *
dlopen_as(const void *caller, const char *file, int mode)
{
    if (file == NULL || strchr(file, '/') != NULL) {
        return dlopen(file, mode);
    }
    void *already = dlopen(file, RTLD_NOLOAD | RTLD_LAZY);
    if (already != NULL) {
        dlclose(already);
        return dlopen(file, mode);
    }
    Dl_serinfo *theirs = serinfo_new(caller_handle(caller));
    Dl_serinfo *ours = serinfo_new(caller_handle((void *)dlopen_as));
    void *result = NULL;
    for (unsigned i = 0; theirs != NULL && i < theirs->dls_cnt; i++) {
        const char *dir = theirs->dls_serpath[i].dls_name;
        if (serinfo_has(ours, dir)) {
            continue;
        }
        char path[4096];
        int len = snprintf(path, sizeof(path), "%s/%s", dir, file);
        if (len > 0 && (size_t)len < sizeof(path) && access(path, F_OK) == 0) {
            result = dlopen(path, mode);
            if (result != NULL) {
                break;
            }
        }
    }
    free(theirs);
    free(ours);
    return result != NULL ? result : dlopen(file, mode);
}

static void *
wrap_dlopen(const char *file, int mode)
{
    void *handle = dlopen_as(__builtin_return_address(0), file, mode);
    if (handle != NULL) {
        pthread_mutex_lock(&patch_lock);
        if (active) {
            rescans++;
            scan_locked();
        }
        pthread_mutex_unlock(&patch_lock);
    }
    return handle;
}

typedef struct {
    uintptr_t caller;
    int after; /* 1 once the caller's object was passed */
    const char *names[256];
    int count;
} next_t;

static int
collect_after_caller(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    next_t *next = arg;
    if (!next->after) {
        next->after = object_contains(info, next->caller);
        return 0;
    }
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0' &&
        next->count < 256) {
        next->names[next->count++] = info->dlpi_name;
    }
    return 0;
}

/* dlsym(RTLD_NEXT) means "after the caller", and the caller would be
 * memhound: search the objects after the real caller, in load order. */
static void *
dlsym_next(const void *caller, const char *name)
{
    next_t next = {.caller = (uintptr_t)caller};
    dl_iterate_phdr(collect_after_caller, &next);
    for (int i = 0; i < next.count; i++) {
        void *handle = dlopen(next.names[i], RTLD_NOLOAD | RTLD_LAZY);
        if (handle == NULL) {
            continue;
        }
        void *sym = dlsym(handle, name);
        dlclose(handle);
        if (sym != NULL) {
            return sym;
        }
    }
    return NULL;
}

static void *
wrap_dlsym(void *handle, const char *name)
{
    const void *caller = __builtin_return_address(0);
    void *sym;
    if (handle == RTLD_NEXT) {
        sym = dlsym_next(caller, name);
    }
    else {
        sym = dlsym(handle, name);
        if (sym == NULL && handle == RTLD_DEFAULT) {
            /* The caller's own scope (its dependencies, when it was loaded
             * RTLD_LOCAL) comes into RTLD_DEFAULT's search too. */
            void *own = caller_handle(caller);
            sym = own != NULL ? dlsym(own, name) : NULL;
        }
    }
    if (sym != NULL && name != NULL &&
        __atomic_load_n(&active, __ATOMIC_RELAXED)) {
        int h = hooked_index(name);
        if (h >= 0 && (hooked[h].kind & ALLOC) && strcmp(name, "dlsym") != 0) {
            /* Only libc's own: a library's private "malloc" stays its. */
            Dl_info mine, theirs;
            if (dladdr(sym, &theirs) && dladdr((void *)alloc_addr, &mine) &&
                theirs.dli_fbase == mine.dli_fbase) {
                return hooked[h].wrapper;
            }
        }
    }
    return sym;
}

/* ---- control ----------------------------------------------------------- */

static void
before_fork(void)
{
    pthread_mutex_lock(&patch_lock);
    mh_nstack_before_fork();
}

static void
after_fork_parent(void)
{
    mh_nstack_after_fork_parent();
    pthread_mutex_unlock(&patch_lock);
}

static void
after_fork_child(void)
{
    mh_nstack_after_fork_child();
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&patch_lock, &fresh, sizeof(fresh));
}

int
mh_native_init_process(void)
{
    static int done;
    if (done) {
        return 0;
    }
    if (pthread_atfork(before_fork, after_fork_parent, after_fork_child) !=
        0) {
        return -1;
    }
    done = 1;
    return 0;
}

void
mh_native_start(void)
{
    pthread_mutex_lock(&patch_lock);
    if (!active) {
        own_addr = (uintptr_t)(void *)wrap_malloc;
        alloc_addr = (uintptr_t)(void *)malloc;
        python_addr = (uintptr_t)(void *)PyMem_Malloc;
        failed_slots = 0;
        rescans = 0;
        __atomic_store_n(&active, 1, __ATOMIC_RELAXED);
        mh_hooks_native_enable(1);
        scan_locked();
    }
    pthread_mutex_unlock(&patch_lock);
}

void
mh_native_stop(void)
{
    pthread_mutex_lock(&patch_lock);
    if (active) {
        mh_hooks_native_enable(0);
        __atomic_store_n(&active, 0, __ATOMIC_RELAXED);
        int what = RESTORE;
        dl_iterate_phdr(visit_records, &what);
        mh_rawmem_free(patches, patches_cap * sizeof(patch_t));
        patches = NULL;
        npatches = patches_cap = 0;
    }
    pthread_mutex_unlock(&patch_lock);
}

void
mh_native_status(mh_native_status_t *out)
{
    pthread_mutex_lock(&patch_lock);
    out->active = active;
    out->patched_slots = npatches;
    out->failed_slots = failed_slots;
    out->rescans = rescans;
    pthread_mutex_unlock(&patch_lock);
}

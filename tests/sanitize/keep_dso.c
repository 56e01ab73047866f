/* keep_dso.c — linked into the sanitized build only (make sanitize). Open MPI loads its components
 * (mca_*.so) with dlopen and unloads them at MPI_Finalize; what they leak is then reported by
 * LeakSanitizer from an "<unknown module>" that no suppression can name. This dlclose, which the
 * executable exports and so interposes on libc's, keeps every library loaded until exit so that
 * tests/sanitize/lsan.supp can name them. Nothing in attnscope itself calls dlclose. */
int dlclose(void *handle);
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}

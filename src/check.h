/* check.h — checked calls for the things that must not fail (MPI, HDF5, CUDA, cuBLAS, I/O on our
 * own files). Each macro prints "[rank R] file:line: call: message" and ends the whole job (MPI_Abort
 * once MPI is up). Untrusted input never goes through these: it is validated and reported through
 * err_set() (util.h) so that every rank can agree on the failure and exit cleanly. */
#ifndef ATTNSCOPE_CHECK_H
#define ATTNSCOPE_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <mpi.h>

/* Prints the message prefixed with the rank and aborts the job. Never returns. */
_Noreturn void check_fail(const char *file, int line, const char *call, const char *msg);
/* While path is set (not NULL), a failure is reported as "attnscope: PATH: cannot write: <why()
 * or the errno text>": the output file is being created and HDF5's own error stack is silenced. */
void check_set_writing(const char *path, const char *(*why)(void));

#define CHECK_MPI(call) do { int rc_ = (call); if (rc_ != MPI_SUCCESS) { \
    char m_[MPI_MAX_ERROR_STRING]; int n_ = 0; MPI_Error_string(rc_, m_, &n_); \
    check_fail(__FILE__, __LINE__, #call, m_); } } while (0)

/* HDF5 calls return a negative value on failure; the library has already printed its stack. */
#define CHECK_H5(call) do { if ((call) < 0) check_fail(__FILE__, __LINE__, #call, "HDF5 call failed"); } while (0)

#define CHECK_IO(cond, what) do { if (!(cond)) check_fail(__FILE__, __LINE__, what, strerror(errno)); } while (0)

/* CUDA and cuBLAS checks exist where their headers were included before this one (.cu files,
 * src/backend_cuda.c). */
#if defined(__CUDACC__) || defined(CUDART_VERSION)
#define CHECK_CUDA(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    check_fail(__FILE__, __LINE__, #call, cudaGetErrorString(e_)); } while (0)
#endif
#ifdef CUBLAS_API_H_
#define CHECK_CUBLAS(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) \
    check_fail(__FILE__, __LINE__, #call, cublasGetStatusString(s_)); } while (0)
#endif
#endif

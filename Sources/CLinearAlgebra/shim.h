#ifndef CLINEARALGEBRA_SHIM_H
#define CLINEARALGEBRA_SHIM_H
#include <cblas.h>
#include <lapacke.h>
// lapack_int is a macro in lapacke_config.h, which Swift cannot import; give it a real type name.
typedef lapack_int LapackInt;
#endif

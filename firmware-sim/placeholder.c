/* placeholder so the library has a source until the module lands */
typedef int estate_placeholder_unused;

typedef int hf_placeholder_unused;

# fwi_rename.sed - the engine-internal names given the fwi_/FWI_ prefix
# (issue 9 item 6). Apply to a file of src/ or tests/c written against the
# old names:  sed -i -E -f scripts/fwi_rename.sed FILE...
s/\bfw_hash128(_t)?\b/fwi_hash128\1/g
s/\bFW_(TABLE_MAGIC|TABLE_VERSION|TABLE_HEADER_SIZE|TABLE_STRIPES|SLOT_HEAD_SIZE|PROBE_WINDOW|TIME_MAX|DECLARE_ALGORITHM)\b/FWI_\1/g
s/\bfw_(table_header_t|table_header|slot_t|slot|table_header_checksum|u128|i128|max64|sat64u|sat64|check_step_args|log_eval|peek_from|store_fail|store_attach_fd)\b/fwi_\1/g
s/\bfw_(gcra|fixed_window|sliding_window)_(decide|reset_after|fresh_at|refund)\b/fwi_\1_\2/g
s/\bfw_##name##_/fwi_##name##_/g
# one name per bound (include/floodwall.h, "bounds and defaults")
s/\bFW_SLIDING_LOG_MAX\b/FW_LOG_CAPACITY_MAX/g
s/\bFW_SHARED_DEFAULT_KEYS\b/FW_DEFAULT_MAX_KEYS/g

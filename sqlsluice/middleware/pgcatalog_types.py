"""The column types of PostgreSQL 15's catalogs (pg_catalog tables and views,
information_schema views), as RowDescription reports them (domains as their base type).

Generated from a PostgreSQL 15 server by bench/gen_pgcatalog_types.py; sluice over DuckDB
types a catalog query's result columns from it (:func:`column_oid`)."""

from __future__ import annotations

# "<schema>.<table>": "<column>:<oid> ..."
_TYPES: dict[str, str] = {
    "information_schema.administrable_role_authorizations": "grantee:19 role_name:19 is_grantable:1043",
    "information_schema.applicable_roles": "grantee:19 role_name:19 is_grantable:1043",
    "information_schema.attributes": (
        "udt_catalog:19 udt_schema:19 udt_name:19 attribute_name:19 ordinal_position:23 "
        "attribute_default:1043 is_nullable:1043 data_type:1043 character_maximum_length:23 "
        "character_octet_length:23 character_set_catalog:19 character_set_schema:19 character_set_name:19 "
        "collation_catalog:19 collation_schema:19 collation_name:19 numeric_precision:23 "
        "numeric_precision_radix:23 numeric_scale:23 datetime_precision:23 interval_type:1043 "
        "interval_precision:23 attribute_udt_catalog:19 attribute_udt_schema:19 attribute_udt_name:19 "
        "scope_catalog:19 scope_schema:19 scope_name:19 maximum_cardinality:23 dtd_identifier:19 "
        "is_derived_reference_attribute:1043"
    ),
    "information_schema.character_sets": (
        "character_set_catalog:19 character_set_schema:19 character_set_name:19 character_repertoire:19 "
        "form_of_use:19 default_collate_catalog:19 default_collate_schema:19 default_collate_name:19"
    ),
    "information_schema.check_constraint_routine_usage": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 specific_catalog:19 specific_schema:19 "
        "specific_name:19"
    ),
    "information_schema.check_constraints": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 check_clause:1043"
    ),
    "information_schema.collation_character_set_applicability": (
        "collation_catalog:19 collation_schema:19 collation_name:19 character_set_catalog:19 "
        "character_set_schema:19 character_set_name:19"
    ),
    "information_schema.collations": "collation_catalog:19 collation_schema:19 collation_name:19 pad_attribute:1043",
    "information_schema.column_column_usage": (
        "table_catalog:19 table_schema:19 table_name:19 column_name:19 dependent_column:19"
    ),
    "information_schema.column_domain_usage": (
        "domain_catalog:19 domain_schema:19 domain_name:19 table_catalog:19 table_schema:19 table_name:19 "
        "column_name:19"
    ),
    "information_schema.column_options": (
        "table_catalog:19 table_schema:19 table_name:19 column_name:19 option_name:19 option_value:1043"
    ),
    "information_schema.column_privileges": (
        "grantor:19 grantee:19 table_catalog:19 table_schema:19 table_name:19 column_name:19 "
        "privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.column_udt_usage": (
        "udt_catalog:19 udt_schema:19 udt_name:19 table_catalog:19 table_schema:19 table_name:19 "
        "column_name:19"
    ),
    "information_schema.columns": (
        "table_catalog:19 table_schema:19 table_name:19 column_name:19 ordinal_position:23 "
        "column_default:1043 is_nullable:1043 data_type:1043 character_maximum_length:23 "
        "character_octet_length:23 numeric_precision:23 numeric_precision_radix:23 numeric_scale:23 "
        "datetime_precision:23 interval_type:1043 interval_precision:23 character_set_catalog:19 "
        "character_set_schema:19 character_set_name:19 collation_catalog:19 collation_schema:19 "
        "collation_name:19 domain_catalog:19 domain_schema:19 domain_name:19 udt_catalog:19 udt_schema:19 "
        "udt_name:19 scope_catalog:19 scope_schema:19 scope_name:19 maximum_cardinality:23 dtd_identifier:19 "
        "is_self_referencing:1043 is_identity:1043 identity_generation:1043 identity_start:1043 "
        "identity_increment:1043 identity_maximum:1043 identity_minimum:1043 identity_cycle:1043 "
        "is_generated:1043 generation_expression:1043 is_updatable:1043"
    ),
    "information_schema.constraint_column_usage": (
        "table_catalog:19 table_schema:19 table_name:19 column_name:19 constraint_catalog:19 "
        "constraint_schema:19 constraint_name:19"
    ),
    "information_schema.constraint_table_usage": (
        "table_catalog:19 table_schema:19 table_name:19 constraint_catalog:19 constraint_schema:19 "
        "constraint_name:19"
    ),
    "information_schema.data_type_privileges": (
        "object_catalog:19 object_schema:19 object_name:19 object_type:1043 dtd_identifier:19"
    ),
    "information_schema.domain_constraints": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 domain_catalog:19 domain_schema:19 "
        "domain_name:19 is_deferrable:1043 initially_deferred:1043"
    ),
    "information_schema.domain_udt_usage": (
        "udt_catalog:19 udt_schema:19 udt_name:19 domain_catalog:19 domain_schema:19 domain_name:19"
    ),
    "information_schema.domains": (
        "domain_catalog:19 domain_schema:19 domain_name:19 data_type:1043 character_maximum_length:23 "
        "character_octet_length:23 character_set_catalog:19 character_set_schema:19 character_set_name:19 "
        "collation_catalog:19 collation_schema:19 collation_name:19 numeric_precision:23 "
        "numeric_precision_radix:23 numeric_scale:23 datetime_precision:23 interval_type:1043 "
        "interval_precision:23 domain_default:1043 udt_catalog:19 udt_schema:19 udt_name:19 scope_catalog:19 "
        "scope_schema:19 scope_name:19 maximum_cardinality:23 dtd_identifier:19"
    ),
    "information_schema.element_types": (
        "object_catalog:19 object_schema:19 object_name:19 object_type:1043 collection_type_identifier:19 "
        "data_type:1043 character_maximum_length:23 character_octet_length:23 character_set_catalog:19 "
        "character_set_schema:19 character_set_name:19 collation_catalog:19 collation_schema:19 "
        "collation_name:19 numeric_precision:23 numeric_precision_radix:23 numeric_scale:23 "
        "datetime_precision:23 interval_type:1043 interval_precision:23 domain_default:1043 udt_catalog:19 "
        "udt_schema:19 udt_name:19 scope_catalog:19 scope_schema:19 scope_name:19 maximum_cardinality:23 "
        "dtd_identifier:19"
    ),
    "information_schema.enabled_roles": "role_name:19",
    "information_schema.foreign_data_wrapper_options": (
        "foreign_data_wrapper_catalog:19 foreign_data_wrapper_name:19 option_name:19 option_value:1043"
    ),
    "information_schema.foreign_data_wrappers": (
        "foreign_data_wrapper_catalog:19 foreign_data_wrapper_name:19 authorization_identifier:19 "
        "library_name:1043 foreign_data_wrapper_language:1043"
    ),
    "information_schema.foreign_server_options": (
        "foreign_server_catalog:19 foreign_server_name:19 option_name:19 option_value:1043"
    ),
    "information_schema.foreign_servers": (
        "foreign_server_catalog:19 foreign_server_name:19 foreign_data_wrapper_catalog:19 "
        "foreign_data_wrapper_name:19 foreign_server_type:1043 foreign_server_version:1043 "
        "authorization_identifier:19"
    ),
    "information_schema.foreign_table_options": (
        "foreign_table_catalog:19 foreign_table_schema:19 foreign_table_name:19 option_name:19 "
        "option_value:1043"
    ),
    "information_schema.foreign_tables": (
        "foreign_table_catalog:19 foreign_table_schema:19 foreign_table_name:19 foreign_server_catalog:19 "
        "foreign_server_name:19"
    ),
    "information_schema.information_schema_catalog_name": "catalog_name:19",
    "information_schema.key_column_usage": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 table_catalog:19 table_schema:19 "
        "table_name:19 column_name:19 ordinal_position:23 position_in_unique_constraint:23"
    ),
    "information_schema.parameters": (
        "specific_catalog:19 specific_schema:19 specific_name:19 ordinal_position:23 parameter_mode:1043 "
        "is_result:1043 as_locator:1043 parameter_name:19 data_type:1043 character_maximum_length:23 "
        "character_octet_length:23 character_set_catalog:19 character_set_schema:19 character_set_name:19 "
        "collation_catalog:19 collation_schema:19 collation_name:19 numeric_precision:23 "
        "numeric_precision_radix:23 numeric_scale:23 datetime_precision:23 interval_type:1043 "
        "interval_precision:23 udt_catalog:19 udt_schema:19 udt_name:19 scope_catalog:19 scope_schema:19 "
        "scope_name:19 maximum_cardinality:23 dtd_identifier:19 parameter_default:1043"
    ),
    "information_schema.referential_constraints": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 unique_constraint_catalog:19 "
        "unique_constraint_schema:19 unique_constraint_name:19 match_option:1043 update_rule:1043 "
        "delete_rule:1043"
    ),
    "information_schema.role_column_grants": (
        "grantor:19 grantee:19 table_catalog:19 table_schema:19 table_name:19 column_name:19 "
        "privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.role_routine_grants": (
        "grantor:19 grantee:19 specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 "
        "routine_schema:19 routine_name:19 privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.role_table_grants": (
        "grantor:19 grantee:19 table_catalog:19 table_schema:19 table_name:19 privilege_type:1043 "
        "is_grantable:1043 with_hierarchy:1043"
    ),
    "information_schema.role_udt_grants": (
        "grantor:19 grantee:19 udt_catalog:19 udt_schema:19 udt_name:19 privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.role_usage_grants": (
        "grantor:19 grantee:19 object_catalog:19 object_schema:19 object_name:19 object_type:1043 "
        "privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.routine_column_usage": (
        "specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 routine_schema:19 "
        "routine_name:19 table_catalog:19 table_schema:19 table_name:19 column_name:19"
    ),
    "information_schema.routine_privileges": (
        "grantor:19 grantee:19 specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 "
        "routine_schema:19 routine_name:19 privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.routine_routine_usage": (
        "specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 routine_schema:19 "
        "routine_name:19"
    ),
    "information_schema.routine_sequence_usage": (
        "specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 routine_schema:19 "
        "routine_name:19 sequence_catalog:19 sequence_schema:19 sequence_name:19"
    ),
    "information_schema.routine_table_usage": (
        "specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 routine_schema:19 "
        "routine_name:19 table_catalog:19 table_schema:19 table_name:19"
    ),
    "information_schema.routines": (
        "specific_catalog:19 specific_schema:19 specific_name:19 routine_catalog:19 routine_schema:19 "
        "routine_name:19 routine_type:1043 module_catalog:19 module_schema:19 module_name:19 udt_catalog:19 "
        "udt_schema:19 udt_name:19 data_type:1043 character_maximum_length:23 character_octet_length:23 "
        "character_set_catalog:19 character_set_schema:19 character_set_name:19 collation_catalog:19 "
        "collation_schema:19 collation_name:19 numeric_precision:23 numeric_precision_radix:23 "
        "numeric_scale:23 datetime_precision:23 interval_type:1043 interval_precision:23 type_udt_catalog:19 "
        "type_udt_schema:19 type_udt_name:19 scope_catalog:19 scope_schema:19 scope_name:19 "
        "maximum_cardinality:23 dtd_identifier:19 routine_body:1043 routine_definition:1043 "
        "external_name:1043 external_language:1043 parameter_style:1043 is_deterministic:1043 "
        "sql_data_access:1043 is_null_call:1043 sql_path:1043 schema_level_routine:1043 "
        "max_dynamic_result_sets:23 is_user_defined_cast:1043 is_implicitly_invocable:1043 security_type:1043 "
        "to_sql_specific_catalog:19 to_sql_specific_schema:19 to_sql_specific_name:19 as_locator:1043 "
        "created:1184 last_altered:1184 new_savepoint_level:1043 is_udt_dependent:1043 "
        "result_cast_from_data_type:1043 result_cast_as_locator:1043 result_cast_char_max_length:23 "
        "result_cast_char_octet_length:23 result_cast_char_set_catalog:19 result_cast_char_set_schema:19 "
        "result_cast_char_set_name:19 result_cast_collation_catalog:19 result_cast_collation_schema:19 "
        "result_cast_collation_name:19 result_cast_numeric_precision:23 "
        "result_cast_numeric_precision_radix:23 result_cast_numeric_scale:23 "
        "result_cast_datetime_precision:23 result_cast_interval_type:1043 result_cast_interval_precision:23 "
        "result_cast_type_udt_catalog:19 result_cast_type_udt_schema:19 result_cast_type_udt_name:19 "
        "result_cast_scope_catalog:19 result_cast_scope_schema:19 result_cast_scope_name:19 "
        "result_cast_maximum_cardinality:23 result_cast_dtd_identifier:19"
    ),
    "information_schema.schemata": (
        "catalog_name:19 schema_name:19 schema_owner:19 default_character_set_catalog:19 "
        "default_character_set_schema:19 default_character_set_name:19 sql_path:1043"
    ),
    "information_schema.sequences": (
        "sequence_catalog:19 sequence_schema:19 sequence_name:19 data_type:1043 numeric_precision:23 "
        "numeric_precision_radix:23 numeric_scale:23 start_value:1043 minimum_value:1043 maximum_value:1043 "
        "increment:1043 cycle_option:1043"
    ),
    "information_schema.table_constraints": (
        "constraint_catalog:19 constraint_schema:19 constraint_name:19 table_catalog:19 table_schema:19 "
        "table_name:19 constraint_type:1043 is_deferrable:1043 initially_deferred:1043 enforced:1043 "
        "nulls_distinct:1043"
    ),
    "information_schema.table_privileges": (
        "grantor:19 grantee:19 table_catalog:19 table_schema:19 table_name:19 privilege_type:1043 "
        "is_grantable:1043 with_hierarchy:1043"
    ),
    "information_schema.tables": (
        "table_catalog:19 table_schema:19 table_name:19 table_type:1043 self_referencing_column_name:19 "
        "reference_generation:1043 user_defined_type_catalog:19 user_defined_type_schema:19 "
        "user_defined_type_name:19 is_insertable_into:1043 is_typed:1043 commit_action:1043"
    ),
    "information_schema.transforms": (
        "udt_catalog:19 udt_schema:19 udt_name:19 specific_catalog:19 specific_schema:19 specific_name:19 "
        "group_name:19 transform_type:1043"
    ),
    "information_schema.triggered_update_columns": (
        "trigger_catalog:19 trigger_schema:19 trigger_name:19 event_object_catalog:19 event_object_schema:19 "
        "event_object_table:19 event_object_column:19"
    ),
    "information_schema.triggers": (
        "trigger_catalog:19 trigger_schema:19 trigger_name:19 event_manipulation:1043 event_object_catalog:19 "
        "event_object_schema:19 event_object_table:19 action_order:23 action_condition:1043 "
        "action_statement:1043 action_orientation:1043 action_timing:1043 action_reference_old_table:19 "
        "action_reference_new_table:19 action_reference_old_row:19 action_reference_new_row:19 created:1184"
    ),
    "information_schema.udt_privileges": (
        "grantor:19 grantee:19 udt_catalog:19 udt_schema:19 udt_name:19 privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.usage_privileges": (
        "grantor:19 grantee:19 object_catalog:19 object_schema:19 object_name:19 object_type:1043 "
        "privilege_type:1043 is_grantable:1043"
    ),
    "information_schema.user_defined_types": (
        "user_defined_type_catalog:19 user_defined_type_schema:19 user_defined_type_name:19 "
        "user_defined_type_category:1043 is_instantiable:1043 is_final:1043 ordering_form:1043 "
        "ordering_category:1043 ordering_routine_catalog:19 ordering_routine_schema:19 "
        "ordering_routine_name:19 reference_type:1043 data_type:1043 character_maximum_length:23 "
        "character_octet_length:23 character_set_catalog:19 character_set_schema:19 character_set_name:19 "
        "collation_catalog:19 collation_schema:19 collation_name:19 numeric_precision:23 "
        "numeric_precision_radix:23 numeric_scale:23 datetime_precision:23 interval_type:1043 "
        "interval_precision:23 source_dtd_identifier:19 ref_dtd_identifier:19"
    ),
    "information_schema.user_mapping_options": (
        "authorization_identifier:19 foreign_server_catalog:19 foreign_server_name:19 option_name:19 "
        "option_value:1043"
    ),
    "information_schema.user_mappings": (
        "authorization_identifier:19 foreign_server_catalog:19 foreign_server_name:19"
    ),
    "information_schema.view_column_usage": (
        "view_catalog:19 view_schema:19 view_name:19 table_catalog:19 table_schema:19 table_name:19 "
        "column_name:19"
    ),
    "information_schema.view_routine_usage": (
        "table_catalog:19 table_schema:19 table_name:19 specific_catalog:19 specific_schema:19 "
        "specific_name:19"
    ),
    "information_schema.view_table_usage": (
        "view_catalog:19 view_schema:19 view_name:19 table_catalog:19 table_schema:19 table_name:19"
    ),
    "information_schema.views": (
        "table_catalog:19 table_schema:19 table_name:19 view_definition:1043 check_option:1043 "
        "is_updatable:1043 is_insertable_into:1043 is_trigger_updatable:1043 is_trigger_deletable:1043 "
        "is_trigger_insertable_into:1043"
    ),
    "pg_catalog.pg_aggregate": (
        "aggfnoid:24 aggkind:18 aggnumdirectargs:21 aggtransfn:24 aggfinalfn:24 aggcombinefn:24 "
        "aggserialfn:24 aggdeserialfn:24 aggmtransfn:24 aggminvtransfn:24 aggmfinalfn:24 aggfinalextra:16 "
        "aggmfinalextra:16 aggfinalmodify:18 aggmfinalmodify:18 aggsortop:26 aggtranstype:26 aggtransspace:23 "
        "aggmtranstype:26 aggmtransspace:23 agginitval:25 aggminitval:25"
    ),
    "pg_catalog.pg_am": "oid:26 amname:19 amhandler:24 amtype:18",
    "pg_catalog.pg_amop": (
        "oid:26 amopfamily:26 amoplefttype:26 amoprighttype:26 amopstrategy:21 amoppurpose:18 amopopr:26 "
        "amopmethod:26 amopsortfamily:26"
    ),
    "pg_catalog.pg_amproc": "oid:26 amprocfamily:26 amproclefttype:26 amprocrighttype:26 amprocnum:21 amproc:24",
    "pg_catalog.pg_attrdef": "oid:26 adrelid:26 adnum:21 adbin:194",
    "pg_catalog.pg_attribute": (
        "attrelid:26 attname:19 atttypid:26 attstattarget:23 attlen:21 attnum:21 attndims:23 attcacheoff:23 "
        "atttypmod:23 attbyval:16 attalign:18 attstorage:18 attcompression:18 attnotnull:16 atthasdef:16 "
        "atthasmissing:16 attidentity:18 attgenerated:18 attisdropped:16 attislocal:16 attinhcount:23 "
        "attcollation:26 attacl:1034 attoptions:1009 attfdwoptions:1009 attmissingval:2277"
    ),
    "pg_catalog.pg_auth_members": "roleid:26 member:26 grantor:26 admin_option:16",
    "pg_catalog.pg_authid": (
        "oid:26 rolname:19 rolsuper:16 rolinherit:16 rolcreaterole:16 rolcreatedb:16 rolcanlogin:16 "
        "rolreplication:16 rolbypassrls:16 rolconnlimit:23 rolpassword:25 rolvaliduntil:1184"
    ),
    "pg_catalog.pg_available_extension_versions": (
        "name:19 version:25 installed:16 superuser:16 trusted:16 relocatable:16 schema:19 requires:1003 "
        "comment:25"
    ),
    "pg_catalog.pg_available_extensions": "name:19 default_version:25 installed_version:25 comment:25",
    "pg_catalog.pg_backend_memory_contexts": (
        "name:25 ident:25 parent:25 level:23 total_bytes:20 total_nblocks:20 free_bytes:20 free_chunks:20 "
        "used_bytes:20"
    ),
    "pg_catalog.pg_cast": "oid:26 castsource:26 casttarget:26 castfunc:26 castcontext:18 castmethod:18",
    "pg_catalog.pg_class": (
        "oid:26 relname:19 relnamespace:26 reltype:26 reloftype:26 relowner:26 relam:26 relfilenode:26 "
        "reltablespace:26 relpages:23 reltuples:700 relallvisible:23 reltoastrelid:26 relhasindex:16 "
        "relisshared:16 relpersistence:18 relkind:18 relnatts:21 relchecks:21 relhasrules:16 "
        "relhastriggers:16 relhassubclass:16 relrowsecurity:16 relforcerowsecurity:16 relispopulated:16 "
        "relreplident:18 relispartition:16 relrewrite:26 relfrozenxid:28 relminmxid:28 relacl:1034 "
        "reloptions:1009 relpartbound:194"
    ),
    "pg_catalog.pg_collation": (
        "oid:26 collname:19 collnamespace:26 collowner:26 collprovider:18 collisdeterministic:16 "
        "collencoding:23 collcollate:25 collctype:25 colliculocale:25 collversion:25"
    ),
    "pg_catalog.pg_config": "name:25 setting:25",
    "pg_catalog.pg_constraint": (
        "oid:26 conname:19 connamespace:26 contype:18 condeferrable:16 condeferred:16 convalidated:16 "
        "conrelid:26 contypid:26 conindid:26 conparentid:26 confrelid:26 confupdtype:18 confdeltype:18 "
        "confmatchtype:18 conislocal:16 coninhcount:23 connoinherit:16 conkey:1005 confkey:1005 "
        "conpfeqop:1028 conppeqop:1028 conffeqop:1028 confdelsetcols:1005 conexclop:1028 conbin:194"
    ),
    "pg_catalog.pg_conversion": (
        "oid:26 conname:19 connamespace:26 conowner:26 conforencoding:23 contoencoding:23 conproc:24 "
        "condefault:16"
    ),
    "pg_catalog.pg_cursors": "name:25 statement:25 is_holdable:16 is_binary:16 is_scrollable:16 creation_time:1184",
    "pg_catalog.pg_database": (
        "oid:26 datname:19 datdba:26 encoding:23 datlocprovider:18 datistemplate:16 datallowconn:16 "
        "datconnlimit:23 datfrozenxid:28 datminmxid:28 dattablespace:26 datcollate:25 datctype:25 "
        "daticulocale:25 datcollversion:25 datacl:1034"
    ),
    "pg_catalog.pg_db_role_setting": "setdatabase:26 setrole:26 setconfig:1009",
    "pg_catalog.pg_default_acl": "oid:26 defaclrole:26 defaclnamespace:26 defaclobjtype:18 defaclacl:1034",
    "pg_catalog.pg_depend": "classid:26 objid:26 objsubid:23 refclassid:26 refobjid:26 refobjsubid:23 deptype:18",
    "pg_catalog.pg_description": "objoid:26 classoid:26 objsubid:23 description:25",
    "pg_catalog.pg_enum": "oid:26 enumtypid:26 enumsortorder:700 enumlabel:19",
    "pg_catalog.pg_event_trigger": "oid:26 evtname:19 evtevent:19 evtowner:26 evtfoid:26 evtenabled:18 evttags:1009",
    "pg_catalog.pg_extension": (
        "oid:26 extname:19 extowner:26 extnamespace:26 extrelocatable:16 extversion:25 extconfig:1028 "
        "extcondition:1009"
    ),
    "pg_catalog.pg_file_settings": "sourcefile:25 sourceline:23 seqno:23 name:25 setting:25 applied:16 error:25",
    "pg_catalog.pg_foreign_data_wrapper": (
        "oid:26 fdwname:19 fdwowner:26 fdwhandler:26 fdwvalidator:26 fdwacl:1034 fdwoptions:1009"
    ),
    "pg_catalog.pg_foreign_server": (
        "oid:26 srvname:19 srvowner:26 srvfdw:26 srvtype:25 srvversion:25 srvacl:1034 srvoptions:1009"
    ),
    "pg_catalog.pg_foreign_table": "ftrelid:26 ftserver:26 ftoptions:1009",
    "pg_catalog.pg_group": "groname:19 grosysid:26 grolist:1028",
    "pg_catalog.pg_hba_file_rules": (
        "line_number:23 type:25 database:1009 user_name:1009 address:25 netmask:25 auth_method:25 "
        "options:1009 error:25"
    ),
    "pg_catalog.pg_ident_file_mappings": "line_number:23 map_name:25 sys_name:25 pg_username:25 error:25",
    "pg_catalog.pg_index": (
        "indexrelid:26 indrelid:26 indnatts:21 indnkeyatts:21 indisunique:16 indnullsnotdistinct:16 "
        "indisprimary:16 indisexclusion:16 indimmediate:16 indisclustered:16 indisvalid:16 indcheckxmin:16 "
        "indisready:16 indislive:16 indisreplident:16 indkey:22 indcollation:30 indclass:30 indoption:22 "
        "indexprs:194 indpred:194"
    ),
    "pg_catalog.pg_indexes": "schemaname:19 tablename:19 indexname:19 tablespace:19 indexdef:25",
    "pg_catalog.pg_inherits": "inhrelid:26 inhparent:26 inhseqno:23 inhdetachpending:16",
    "pg_catalog.pg_init_privs": "objoid:26 classoid:26 objsubid:23 privtype:18 initprivs:1034",
    "pg_catalog.pg_language": (
        "oid:26 lanname:19 lanowner:26 lanispl:16 lanpltrusted:16 lanplcallfoid:26 laninline:26 "
        "lanvalidator:26 lanacl:1034"
    ),
    "pg_catalog.pg_largeobject": "loid:26 pageno:23 data:17",
    "pg_catalog.pg_largeobject_metadata": "oid:26 lomowner:26 lomacl:1034",
    "pg_catalog.pg_locks": (
        "locktype:25 database:26 relation:26 page:23 tuple:21 virtualxid:25 transactionid:28 classid:26 "
        "objid:26 objsubid:21 virtualtransaction:25 pid:23 mode:25 granted:16 fastpath:16 waitstart:1184"
    ),
    "pg_catalog.pg_matviews": (
        "schemaname:19 matviewname:19 matviewowner:19 tablespace:19 hasindexes:16 ispopulated:16 "
        "definition:25"
    ),
    "pg_catalog.pg_namespace": "oid:26 nspname:19 nspowner:26 nspacl:1034",
    "pg_catalog.pg_opclass": (
        "oid:26 opcmethod:26 opcname:19 opcnamespace:26 opcowner:26 opcfamily:26 opcintype:26 opcdefault:16 "
        "opckeytype:26"
    ),
    "pg_catalog.pg_operator": (
        "oid:26 oprname:19 oprnamespace:26 oprowner:26 oprkind:18 oprcanmerge:16 oprcanhash:16 oprleft:26 "
        "oprright:26 oprresult:26 oprcom:26 oprnegate:26 oprcode:24 oprrest:24 oprjoin:24"
    ),
    "pg_catalog.pg_opfamily": "oid:26 opfmethod:26 opfname:19 opfnamespace:26 opfowner:26",
    "pg_catalog.pg_parameter_acl": "oid:26 parname:25 paracl:1034",
    "pg_catalog.pg_partitioned_table": (
        "partrelid:26 partstrat:18 partnatts:21 partdefid:26 partattrs:22 partclass:30 partcollation:30 "
        "partexprs:194"
    ),
    "pg_catalog.pg_policies": (
        "schemaname:19 tablename:19 policyname:19 permissive:25 roles:1003 cmd:25 qual:25 with_check:25"
    ),
    "pg_catalog.pg_policy": (
        "oid:26 polname:19 polrelid:26 polcmd:18 polpermissive:16 polroles:1028 polqual:194 polwithcheck:194"
    ),
    "pg_catalog.pg_prepared_statements": (
        "name:25 statement:25 prepare_time:1184 parameter_types:2211 from_sql:16 generic_plans:20 "
        "custom_plans:20"
    ),
    "pg_catalog.pg_prepared_xacts": "transaction:28 gid:25 prepared:1184 owner:19 database:19",
    "pg_catalog.pg_proc": (
        "oid:26 proname:19 pronamespace:26 proowner:26 prolang:26 procost:700 prorows:700 provariadic:26 "
        "prosupport:24 prokind:18 prosecdef:16 proleakproof:16 proisstrict:16 proretset:16 provolatile:18 "
        "proparallel:18 pronargs:21 pronargdefaults:21 prorettype:26 proargtypes:30 proallargtypes:1028 "
        "proargmodes:1002 proargnames:1009 proargdefaults:194 protrftypes:1028 prosrc:25 probin:25 "
        "prosqlbody:194 proconfig:1009 proacl:1034"
    ),
    "pg_catalog.pg_publication": (
        "oid:26 pubname:19 pubowner:26 puballtables:16 pubinsert:16 pubupdate:16 pubdelete:16 pubtruncate:16 "
        "pubviaroot:16"
    ),
    "pg_catalog.pg_publication_namespace": "oid:26 pnpubid:26 pnnspid:26",
    "pg_catalog.pg_publication_rel": "oid:26 prpubid:26 prrelid:26 prqual:194 prattrs:22",
    "pg_catalog.pg_publication_tables": "pubname:19 schemaname:19 tablename:19 attnames:1003 rowfilter:25",
    "pg_catalog.pg_range": (
        "rngtypid:26 rngsubtype:26 rngmultitypid:26 rngcollation:26 rngsubopc:26 rngcanonical:24 "
        "rngsubdiff:24"
    ),
    "pg_catalog.pg_replication_origin": "roident:26 roname:25",
    "pg_catalog.pg_replication_origin_status": "local_id:26 external_id:25 remote_lsn:3220 local_lsn:3220",
    "pg_catalog.pg_replication_slots": (
        "slot_name:19 plugin:19 slot_type:25 datoid:26 database:19 temporary:16 active:16 active_pid:23 "
        "xmin:28 catalog_xmin:28 restart_lsn:3220 confirmed_flush_lsn:3220 wal_status:25 safe_wal_size:20 "
        "two_phase:16"
    ),
    "pg_catalog.pg_rewrite": (
        "oid:26 rulename:19 ev_class:26 ev_type:18 ev_enabled:18 is_instead:16 ev_qual:194 ev_action:194"
    ),
    "pg_catalog.pg_roles": (
        "rolname:19 rolsuper:16 rolinherit:16 rolcreaterole:16 rolcreatedb:16 rolcanlogin:16 "
        "rolreplication:16 rolconnlimit:23 rolpassword:25 rolvaliduntil:1184 rolbypassrls:16 rolconfig:1009 "
        "oid:26"
    ),
    "pg_catalog.pg_rules": "schemaname:19 tablename:19 rulename:19 definition:25",
    "pg_catalog.pg_seclabel": "objoid:26 classoid:26 objsubid:23 provider:25 label:25",
    "pg_catalog.pg_seclabels": (
        "objoid:26 classoid:26 objsubid:23 objtype:25 objnamespace:26 objname:25 provider:25 label:25"
    ),
    "pg_catalog.pg_sequence": (
        "seqrelid:26 seqtypid:26 seqstart:20 seqincrement:20 seqmax:20 seqmin:20 seqcache:20 seqcycle:16"
    ),
    "pg_catalog.pg_sequences": (
        "schemaname:19 sequencename:19 sequenceowner:19 data_type:2206 start_value:20 min_value:20 "
        "max_value:20 increment_by:20 cycle:16 cache_size:20 last_value:20"
    ),
    "pg_catalog.pg_settings": (
        "name:25 setting:25 unit:25 category:25 short_desc:25 extra_desc:25 context:25 vartype:25 source:25 "
        "min_val:25 max_val:25 enumvals:1009 boot_val:25 reset_val:25 sourcefile:25 sourceline:23 "
        "pending_restart:16"
    ),
    "pg_catalog.pg_shadow": (
        "usename:19 usesysid:26 usecreatedb:16 usesuper:16 userepl:16 usebypassrls:16 passwd:25 valuntil:1184 "
        "useconfig:1009"
    ),
    "pg_catalog.pg_shdepend": "dbid:26 classid:26 objid:26 objsubid:23 refclassid:26 refobjid:26 deptype:18",
    "pg_catalog.pg_shdescription": "objoid:26 classoid:26 description:25",
    "pg_catalog.pg_shmem_allocations": "name:25 off:20 size:20 allocated_size:20",
    "pg_catalog.pg_shseclabel": "objoid:26 classoid:26 provider:25 label:25",
    "pg_catalog.pg_statistic": (
        "starelid:26 staattnum:21 stainherit:16 stanullfrac:700 stawidth:23 stadistinct:700 stakind1:21 "
        "stakind2:21 stakind3:21 stakind4:21 stakind5:21 staop1:26 staop2:26 staop3:26 staop4:26 staop5:26 "
        "stacoll1:26 stacoll2:26 stacoll3:26 stacoll4:26 stacoll5:26 stanumbers1:1021 stanumbers2:1021 "
        "stanumbers3:1021 stanumbers4:1021 stanumbers5:1021 stavalues1:2277 stavalues2:2277 stavalues3:2277 "
        "stavalues4:2277 stavalues5:2277"
    ),
    "pg_catalog.pg_statistic_ext": (
        "oid:26 stxrelid:26 stxname:19 stxnamespace:26 stxowner:26 stxstattarget:23 stxkeys:22 stxkind:1002 "
        "stxexprs:194"
    ),
    "pg_catalog.pg_statistic_ext_data": (
        "stxoid:26 stxdinherit:16 stxdndistinct:3361 stxddependencies:3402 stxdmcv:5017 stxdexpr:10028"
    ),
    "pg_catalog.pg_stats": (
        "schemaname:19 tablename:19 attname:19 inherited:16 null_frac:700 avg_width:23 n_distinct:700 "
        "most_common_vals:2277 most_common_freqs:1021 histogram_bounds:2277 correlation:700 "
        "most_common_elems:2277 most_common_elem_freqs:1021 elem_count_histogram:1021"
    ),
    "pg_catalog.pg_stats_ext": (
        "schemaname:19 tablename:19 statistics_schemaname:19 statistics_name:19 statistics_owner:19 "
        "attnames:1003 exprs:1009 kinds:1002 inherited:16 n_distinct:3361 dependencies:3402 "
        "most_common_vals:1009 most_common_val_nulls:1000 most_common_freqs:1022 most_common_base_freqs:1022"
    ),
    "pg_catalog.pg_stats_ext_exprs": (
        "schemaname:19 tablename:19 statistics_schemaname:19 statistics_name:19 statistics_owner:19 expr:25 "
        "inherited:16 null_frac:700 avg_width:23 n_distinct:700 most_common_vals:2277 most_common_freqs:1021 "
        "histogram_bounds:2277 correlation:700 most_common_elems:2277 most_common_elem_freqs:1021 "
        "elem_count_histogram:1021"
    ),
    "pg_catalog.pg_subscription": (
        "oid:26 subdbid:26 subskiplsn:3220 subname:19 subowner:26 subenabled:16 subbinary:16 substream:16 "
        "subtwophasestate:18 subdisableonerr:16 subconninfo:25 subslotname:19 subsynccommit:25 "
        "subpublications:1009"
    ),
    "pg_catalog.pg_subscription_rel": "srsubid:26 srrelid:26 srsubstate:18 srsublsn:3220",
    "pg_catalog.pg_tables": (
        "schemaname:19 tablename:19 tableowner:19 tablespace:19 hasindexes:16 hasrules:16 hastriggers:16 "
        "rowsecurity:16"
    ),
    "pg_catalog.pg_tablespace": "oid:26 spcname:19 spcowner:26 spcacl:1034 spcoptions:1009",
    "pg_catalog.pg_timezone_abbrevs": "abbrev:25 utc_offset:1186 is_dst:16",
    "pg_catalog.pg_timezone_names": "name:25 abbrev:25 utc_offset:1186 is_dst:16",
    "pg_catalog.pg_transform": "oid:26 trftype:26 trflang:26 trffromsql:24 trftosql:24",
    "pg_catalog.pg_trigger": (
        "oid:26 tgrelid:26 tgparentid:26 tgname:19 tgfoid:26 tgtype:21 tgenabled:18 tgisinternal:16 "
        "tgconstrrelid:26 tgconstrindid:26 tgconstraint:26 tgdeferrable:16 tginitdeferred:16 tgnargs:21 "
        "tgattr:22 tgargs:17 tgqual:194 tgoldtable:19 tgnewtable:19"
    ),
    "pg_catalog.pg_ts_config": "oid:26 cfgname:19 cfgnamespace:26 cfgowner:26 cfgparser:26",
    "pg_catalog.pg_ts_config_map": "mapcfg:26 maptokentype:23 mapseqno:23 mapdict:26",
    "pg_catalog.pg_ts_dict": "oid:26 dictname:19 dictnamespace:26 dictowner:26 dicttemplate:26 dictinitoption:25",
    "pg_catalog.pg_ts_parser": (
        "oid:26 prsname:19 prsnamespace:26 prsstart:24 prstoken:24 prsend:24 prsheadline:24 prslextype:24"
    ),
    "pg_catalog.pg_ts_template": "oid:26 tmplname:19 tmplnamespace:26 tmplinit:24 tmpllexize:24",
    "pg_catalog.pg_type": (
        "oid:26 typname:19 typnamespace:26 typowner:26 typlen:21 typbyval:16 typtype:18 typcategory:18 "
        "typispreferred:16 typisdefined:16 typdelim:18 typrelid:26 typsubscript:24 typelem:26 typarray:26 "
        "typinput:24 typoutput:24 typreceive:24 typsend:24 typmodin:24 typmodout:24 typanalyze:24 typalign:18 "
        "typstorage:18 typnotnull:16 typbasetype:26 typtypmod:23 typndims:23 typcollation:26 "
        "typdefaultbin:194 typdefault:25 typacl:1034"
    ),
    "pg_catalog.pg_user": (
        "usename:19 usesysid:26 usecreatedb:16 usesuper:16 userepl:16 usebypassrls:16 passwd:25 valuntil:1184 "
        "useconfig:1009"
    ),
    "pg_catalog.pg_user_mapping": "oid:26 umuser:26 umserver:26 umoptions:1009",
    "pg_catalog.pg_user_mappings": "umid:26 srvid:26 srvname:19 umuser:26 usename:19 umoptions:1009",
    "pg_catalog.pg_views": "schemaname:19 viewname:19 viewowner:19 definition:25",
    "pg_catalog.pg_stat_activity": (
        "datid:26 datname:19 pid:23 leader_pid:23 usesysid:26 usename:19 application_name:25 client_addr:869 "
        "client_hostname:25 client_port:23 backend_start:1184 xact_start:1184 query_start:1184 "
        "state_change:1184 wait_event_type:25 wait_event:25 state:25 backend_xid:28 backend_xmin:28 "
        "query_id:20 query:25 backend_type:25"
    ),
    "pg_catalog.pg_stat_all_tables": (
        "relid:26 schemaname:19 relname:19 seq_scan:20 seq_tup_read:20 idx_scan:20 idx_tup_fetch:20 "
        "n_tup_ins:20 n_tup_upd:20 n_tup_del:20 n_tup_hot_upd:20 n_live_tup:20 n_dead_tup:20 "
        "n_mod_since_analyze:20 n_ins_since_vacuum:20 last_vacuum:1184 last_autovacuum:1184 last_analyze:1184 "
        "last_autoanalyze:1184 vacuum_count:20 autovacuum_count:20 analyze_count:20 autoanalyze_count:20"
    ),
    "pg_catalog.pg_stat_user_tables": (
        "relid:26 schemaname:19 relname:19 seq_scan:20 seq_tup_read:20 idx_scan:20 idx_tup_fetch:20 "
        "n_tup_ins:20 n_tup_upd:20 n_tup_del:20 n_tup_hot_upd:20 n_live_tup:20 n_dead_tup:20 "
        "n_mod_since_analyze:20 n_ins_since_vacuum:20 last_vacuum:1184 last_autovacuum:1184 last_analyze:1184 "
        "last_autoanalyze:1184 vacuum_count:20 autovacuum_count:20 analyze_count:20 autoanalyze_count:20"
    ),
    "pg_catalog.pg_statio_user_tables": (
        "relid:26 schemaname:19 relname:19 heap_blks_read:20 heap_blks_hit:20 idx_blks_read:20 "
        "idx_blks_hit:20 toast_blks_read:20 toast_blks_hit:20 tidx_blks_read:20 tidx_blks_hit:20"
    ),
}

# PostgreSQL 15's types (not composite): oid:typname:typlen:typtype:typcategory:typelem:typarray:typinput:typbasetype:schema (p / i)
PG_TYPES = (
    "16:bool:1:b:B:0:1000:boolin:0:p 17:bytea:-1:b:U:0:1001:byteain:0:p 18:char:1:b:Z:0:1002:charin:0:p "
    "19:name:64:b:S:18:1003:namein:0:p 20:int8:8:b:N:0:1016:int8in:0:p 21:int2:2:b:N:0:1005:int2in:0:p "
    "22:int2vector:-1:b:A:21:1006:int2vectorin:0:p 23:int4:4:b:N:0:1007:int4in:0:p "
    "24:regproc:4:b:N:0:1008:regprocin:0:p 25:text:-1:b:S:0:1009:textin:0:p 26:oid:4:b:N:0:1028:oidin:0:p "
    "27:tid:6:b:U:0:1010:tidin:0:p 28:xid:4:b:U:0:1011:xidin:0:p 29:cid:4:b:U:0:1012:cidin:0:p "
    "30:oidvector:-1:b:A:26:1013:oidvectorin:0:p 32:pg_ddl_command:8:p:P:0:0:pg_ddl_command_in:0:p "
    "114:json:-1:b:U:0:199:json_in:0:p 142:xml:-1:b:U:0:143:xml_in:0:p 143:_xml:-1:b:A:142:0:array_in:0:p "
    "194:pg_node_tree:-1:b:Z:0:0:pg_node_tree_in:0:p 199:_json:-1:b:A:114:0:array_in:0:p "
    "269:table_am_handler:4:p:P:0:0:table_am_handler_in:0:p 271:_xid8:-1:b:A:5069:0:array_in:0:p "
    "325:index_am_handler:4:p:P:0:0:index_am_handler_in:0:p 600:point:16:b:G:701:1017:point_in:0:p "
    "601:lseg:32:b:G:600:1018:lseg_in:0:p 602:path:-1:b:G:0:1019:path_in:0:p "
    "603:box:32:b:G:600:1020:box_in:0:p 604:polygon:-1:b:G:0:1027:poly_in:0:p "
    "628:line:24:b:G:701:629:line_in:0:p 629:_line:-1:b:A:628:0:array_in:0:p "
    "650:cidr:-1:b:I:0:651:cidr_in:0:p 651:_cidr:-1:b:A:650:0:array_in:0:p "
    "700:float4:4:b:N:0:1021:float4in:0:p 701:float8:8:b:N:0:1022:float8in:0:p "
    "705:unknown:-2:p:X:0:0:unknownin:0:p 718:circle:24:b:G:0:719:circle_in:0:p "
    "719:_circle:-1:b:A:718:0:array_in:0:p 774:macaddr8:8:b:U:0:775:macaddr8_in:0:p "
    "775:_macaddr8:-1:b:A:774:0:array_in:0:p 790:money:8:b:N:0:791:cash_in:0:p "
    "791:_money:-1:b:A:790:0:array_in:0:p 829:macaddr:6:b:U:0:1040:macaddr_in:0:p "
    "869:inet:-1:b:I:0:1041:inet_in:0:p 1000:_bool:-1:b:A:16:0:array_in:0:p "
    "1001:_bytea:-1:b:A:17:0:array_in:0:p 1002:_char:-1:b:A:18:0:array_in:0:p "
    "1003:_name:-1:b:A:19:0:array_in:0:p 1005:_int2:-1:b:A:21:0:array_in:0:p "
    "1006:_int2vector:-1:b:A:22:0:array_in:0:p 1007:_int4:-1:b:A:23:0:array_in:0:p "
    "1008:_regproc:-1:b:A:24:0:array_in:0:p 1009:_text:-1:b:A:25:0:array_in:0:p "
    "1010:_tid:-1:b:A:27:0:array_in:0:p 1011:_xid:-1:b:A:28:0:array_in:0:p "
    "1012:_cid:-1:b:A:29:0:array_in:0:p 1013:_oidvector:-1:b:A:30:0:array_in:0:p "
    "1014:_bpchar:-1:b:A:1042:0:array_in:0:p 1015:_varchar:-1:b:A:1043:0:array_in:0:p "
    "1016:_int8:-1:b:A:20:0:array_in:0:p 1017:_point:-1:b:A:600:0:array_in:0:p "
    "1018:_lseg:-1:b:A:601:0:array_in:0:p 1019:_path:-1:b:A:602:0:array_in:0:p "
    "1020:_box:-1:b:A:603:0:array_in:0:p 1021:_float4:-1:b:A:700:0:array_in:0:p "
    "1022:_float8:-1:b:A:701:0:array_in:0:p 1027:_polygon:-1:b:A:604:0:array_in:0:p "
    "1028:_oid:-1:b:A:26:0:array_in:0:p 1033:aclitem:12:b:U:0:1034:aclitemin:0:p "
    "1034:_aclitem:-1:b:A:1033:0:array_in:0:p 1040:_macaddr:-1:b:A:829:0:array_in:0:p "
    "1041:_inet:-1:b:A:869:0:array_in:0:p 1042:bpchar:-1:b:S:0:1014:bpcharin:0:p "
    "1043:varchar:-1:b:S:0:1015:varcharin:0:p 1082:date:4:b:D:0:1182:date_in:0:p "
    "1083:time:8:b:D:0:1183:time_in:0:p 1114:timestamp:8:b:D:0:1115:timestamp_in:0:p "
    "1115:_timestamp:-1:b:A:1114:0:array_in:0:p 1182:_date:-1:b:A:1082:0:array_in:0:p "
    "1183:_time:-1:b:A:1083:0:array_in:0:p 1184:timestamptz:8:b:D:0:1185:timestamptz_in:0:p "
    "1185:_timestamptz:-1:b:A:1184:0:array_in:0:p 1186:interval:16:b:T:0:1187:interval_in:0:p "
    "1187:_interval:-1:b:A:1186:0:array_in:0:p 1231:_numeric:-1:b:A:1700:0:array_in:0:p "
    "1263:_cstring:-1:b:A:2275:0:array_in:0:p 1266:timetz:12:b:D:0:1270:timetz_in:0:p "
    "1270:_timetz:-1:b:A:1266:0:array_in:0:p 1560:bit:-1:b:V:0:1561:bit_in:0:p "
    "1561:_bit:-1:b:A:1560:0:array_in:0:p 1562:varbit:-1:b:V:0:1563:varbit_in:0:p "
    "1563:_varbit:-1:b:A:1562:0:array_in:0:p 1700:numeric:-1:b:N:0:1231:numeric_in:0:p "
    "1790:refcursor:-1:b:U:0:2201:textin:0:p 2201:_refcursor:-1:b:A:1790:0:array_in:0:p "
    "2202:regprocedure:4:b:N:0:2207:regprocedurein:0:p 2203:regoper:4:b:N:0:2208:regoperin:0:p "
    "2204:regoperator:4:b:N:0:2209:regoperatorin:0:p 2205:regclass:4:b:N:0:2210:regclassin:0:p "
    "2206:regtype:4:b:N:0:2211:regtypein:0:p 2207:_regprocedure:-1:b:A:2202:0:array_in:0:p "
    "2208:_regoper:-1:b:A:2203:0:array_in:0:p 2209:_regoperator:-1:b:A:2204:0:array_in:0:p "
    "2210:_regclass:-1:b:A:2205:0:array_in:0:p 2211:_regtype:-1:b:A:2206:0:array_in:0:p "
    "2249:record:-1:p:P:0:2287:record_in:0:p 2275:cstring:-2:p:P:0:1263:cstring_in:0:p "
    "2276:any:4:p:P:0:0:any_in:0:p 2277:anyarray:-1:p:P:0:0:anyarray_in:0:p "
    "2278:void:4:p:P:0:0:void_in:0:p 2279:trigger:4:p:P:0:0:trigger_in:0:p "
    "2280:language_handler:4:p:P:0:0:language_handler_in:0:p 2281:internal:8:p:P:0:0:internal_in:0:p "
    "2283:anyelement:4:p:P:0:0:anyelement_in:0:p 2287:_record:-1:p:P:2249:0:array_in:0:p "
    "2776:anynonarray:4:p:P:0:0:anynonarray_in:0:p 2949:_txid_snapshot:-1:b:A:2970:0:array_in:0:p "
    "2950:uuid:16:b:U:0:2951:uuid_in:0:p 2951:_uuid:-1:b:A:2950:0:array_in:0:p "
    "2970:txid_snapshot:-1:b:U:0:2949:txid_snapshot_in:0:p 3115:fdw_handler:4:p:P:0:0:fdw_handler_in:0:p "
    "3220:pg_lsn:8:b:U:0:3221:pg_lsn_in:0:p 3221:_pg_lsn:-1:b:A:3220:0:array_in:0:p "
    "3310:tsm_handler:4:p:P:0:0:tsm_handler_in:0:p 3361:pg_ndistinct:-1:b:Z:0:0:pg_ndistinct_in:0:p "
    "3402:pg_dependencies:-1:b:Z:0:0:pg_dependencies_in:0:p 3500:anyenum:4:p:P:0:0:anyenum_in:0:p "
    "3614:tsvector:-1:b:U:0:3643:tsvectorin:0:p 3615:tsquery:-1:b:U:0:3645:tsqueryin:0:p "
    "3642:gtsvector:-1:b:U:0:3644:gtsvectorin:0:p 3643:_tsvector:-1:b:A:3614:0:array_in:0:p "
    "3644:_gtsvector:-1:b:A:3642:0:array_in:0:p 3645:_tsquery:-1:b:A:3615:0:array_in:0:p "
    "3734:regconfig:4:b:N:0:3735:regconfigin:0:p 3735:_regconfig:-1:b:A:3734:0:array_in:0:p "
    "3769:regdictionary:4:b:N:0:3770:regdictionaryin:0:p 3770:_regdictionary:-1:b:A:3769:0:array_in:0:p "
    "3802:jsonb:-1:b:U:0:3807:jsonb_in:0:p 3807:_jsonb:-1:b:A:3802:0:array_in:0:p "
    "3831:anyrange:-1:p:P:0:0:anyrange_in:0:p 3838:event_trigger:4:p:P:0:0:event_trigger_in:0:p "
    "3904:int4range:-1:r:R:0:3905:range_in:0:p 3905:_int4range:-1:b:A:3904:0:array_in:0:p "
    "3906:numrange:-1:r:R:0:3907:range_in:0:p 3907:_numrange:-1:b:A:3906:0:array_in:0:p "
    "3908:tsrange:-1:r:R:0:3909:range_in:0:p 3909:_tsrange:-1:b:A:3908:0:array_in:0:p "
    "3910:tstzrange:-1:r:R:0:3911:range_in:0:p 3911:_tstzrange:-1:b:A:3910:0:array_in:0:p "
    "3912:daterange:-1:r:R:0:3913:range_in:0:p 3913:_daterange:-1:b:A:3912:0:array_in:0:p "
    "3926:int8range:-1:r:R:0:3927:range_in:0:p 3927:_int8range:-1:b:A:3926:0:array_in:0:p "
    "4072:jsonpath:-1:b:U:0:4073:jsonpath_in:0:p 4073:_jsonpath:-1:b:A:4072:0:array_in:0:p "
    "4089:regnamespace:4:b:N:0:4090:regnamespacein:0:p 4090:_regnamespace:-1:b:A:4089:0:array_in:0:p "
    "4096:regrole:4:b:N:0:4097:regrolein:0:p 4097:_regrole:-1:b:A:4096:0:array_in:0:p "
    "4191:regcollation:4:b:N:0:4192:regcollationin:0:p 4192:_regcollation:-1:b:A:4191:0:array_in:0:p "
    "4451:int4multirange:-1:m:R:0:6150:multirange_in:0:p "
    "4532:nummultirange:-1:m:R:0:6151:multirange_in:0:p 4533:tsmultirange:-1:m:R:0:6152:multirange_in:0:p "
    "4534:tstzmultirange:-1:m:R:0:6153:multirange_in:0:p "
    "4535:datemultirange:-1:m:R:0:6155:multirange_in:0:p "
    "4536:int8multirange:-1:m:R:0:6157:multirange_in:0:p "
    "4537:anymultirange:-1:p:P:0:0:anymultirange_in:0:p "
    "4538:anycompatiblemultirange:-1:p:P:0:0:anycompatiblemultirange_in:0:p "
    "4600:pg_brin_bloom_summary:-1:b:Z:0:0:brin_bloom_summary_in:0:p "
    "4601:pg_brin_minmax_multi_summary:-1:b:Z:0:0:brin_minmax_multi_summary_in:0:p "
    "5017:pg_mcv_list:-1:b:Z:0:0:pg_mcv_list_in:0:p 5038:pg_snapshot:-1:b:U:0:5039:pg_snapshot_in:0:p "
    "5039:_pg_snapshot:-1:b:A:5038:0:array_in:0:p 5069:xid8:8:b:U:0:271:xid8in:0:p "
    "5077:anycompatible:4:p:P:0:0:anycompatible_in:0:p "
    "5078:anycompatiblearray:-1:p:P:0:0:anycompatiblearray_in:0:p "
    "5079:anycompatiblenonarray:4:p:P:0:0:anycompatiblenonarray_in:0:p "
    "5080:anycompatiblerange:-1:p:P:0:0:anycompatiblerange_in:0:p "
    "6150:_int4multirange:-1:b:A:4451:0:array_in:0:p 6151:_nummultirange:-1:b:A:4532:0:array_in:0:p "
    "6152:_tsmultirange:-1:b:A:4533:0:array_in:0:p 6153:_tstzmultirange:-1:b:A:4534:0:array_in:0:p "
    "6155:_datemultirange:-1:b:A:4535:0:array_in:0:p 6157:_int8multirange:-1:b:A:4536:0:array_in:0:p "
    "13220:_cardinal_number:-1:b:A:13221:0:array_in:0:i "
    "13221:cardinal_number:4:d:N:0:13220:domain_in:23:i 13223:_character_data:-1:b:A:13224:0:array_in:0:i "
    "13224:character_data:-1:d:S:0:13223:domain_in:1043:i "
    "13225:_sql_identifier:-1:b:A:13226:0:array_in:0:i 13226:sql_identifier:64:d:S:0:13225:domain_in:19:i "
    "13231:_time_stamp:-1:b:A:13232:0:array_in:0:i 13232:time_stamp:8:d:D:0:13231:domain_in:1184:i "
    "13233:_yes_or_no:-1:b:A:13234:0:array_in:0:i 13234:yes_or_no:-1:d:S:0:13233:domain_in:1043:i"
)

# PostgreSQL 15's operator classes: oid:opcmethod:opcname:opcfamily:opcintype:opcdefault:opckeytype
PG_OPCLASSES = (
    "1978:403:int4_ops:1976:23:t:0 1979:403:int2_ops:1976:21:t:0 1981:403:oid_ops:1989:26:t:0 "
    "3122:403:date_ops:434:1082:t:0 3123:403:float8_ops:1970:701:t:0 3124:403:int8_ops:1976:20:t:0 "
    "3125:403:numeric_ops:1988:1700:t:0 3126:403:text_ops:1994:25:t:0 "
    "3127:403:timestamptz_ops:434:1184:t:0 3128:403:timestamp_ops:434:1114:t:0 "
    "4217:403:text_pattern_ops:2095:25:f:0 4218:403:varchar_pattern_ops:2095:25:f:0 "
    "4219:403:bpchar_pattern_ops:2097:1042:f:0 10000:403:array_ops:397:2277:t:0 "
    "10001:405:array_ops:627:2277:t:0 10002:403:bit_ops:423:1560:t:0 10003:403:bool_ops:424:16:t:0 "
    "10004:403:bpchar_ops:426:1042:t:0 10005:405:bpchar_ops:427:1042:t:0 10006:403:bytea_ops:428:17:t:0 "
    "10007:403:char_ops:429:18:t:0 10008:405:char_ops:431:18:t:0 10009:403:cidr_ops:1974:869:f:0 "
    "10010:405:cidr_ops:1975:869:f:0 10011:405:date_ops:435:1082:t:0 10012:403:float4_ops:1970:700:t:0 "
    "10013:405:float4_ops:1971:700:t:0 10014:405:float8_ops:1971:701:t:0 10015:403:inet_ops:1974:869:t:0 "
    "10016:405:inet_ops:1975:869:t:0 10017:783:inet_ops:3550:869:f:0 10018:4000:inet_ops:3794:869:t:0 "
    "10019:405:int2_ops:1977:21:t:0 10020:405:int4_ops:1977:23:t:0 10021:405:int8_ops:1977:20:t:0 "
    "10022:403:interval_ops:1982:1186:t:0 10023:405:interval_ops:1983:1186:t:0 "
    "10024:403:macaddr_ops:1984:829:t:0 10025:405:macaddr_ops:1985:829:t:0 "
    "10026:403:macaddr8_ops:3371:774:t:0 10027:405:macaddr8_ops:3372:774:t:0 "
    "10028:403:name_ops:1994:19:t:2275 10029:405:name_ops:1995:19:t:0 10030:405:numeric_ops:1998:1700:t:0 "
    "10031:405:oid_ops:1990:26:t:0 10032:403:oidvector_ops:1991:30:t:0 "
    "10033:405:oidvector_ops:1992:30:t:0 10034:403:record_ops:2994:2249:t:0 "
    "10035:405:record_ops:6194:2249:t:0 10036:403:record_image_ops:3194:2249:f:0 "
    "10037:405:text_ops:1995:25:t:0 10038:403:time_ops:1996:1083:t:0 10039:405:time_ops:1997:1083:t:0 "
    "10040:405:timestamptz_ops:1999:1184:t:0 10041:403:timetz_ops:2000:1266:t:0 "
    "10042:405:timetz_ops:2001:1266:t:0 10043:403:varbit_ops:2002:1562:t:0 "
    "10044:403:varchar_ops:1994:25:f:0 10045:405:varchar_ops:1995:25:f:0 "
    "10046:405:timestamp_ops:2040:1114:t:0 10047:403:money_ops:2099:790:t:0 "
    "10048:405:bool_ops:2222:16:t:0 10049:405:bytea_ops:2223:17:t:0 10050:403:tid_ops:2789:27:t:0 "
    "10051:405:xid_ops:2225:28:t:0 10052:405:xid8_ops:5032:5069:t:0 10053:403:xid8_ops:5067:5069:t:0 "
    "10054:405:cid_ops:2226:29:t:0 10055:405:tid_ops:2227:27:t:0 10056:405:text_pattern_ops:2229:25:f:0 "
    "10057:405:varchar_pattern_ops:2229:25:f:0 10058:405:bpchar_pattern_ops:2231:1042:f:0 "
    "10059:405:aclitem_ops:2235:1033:t:0 10060:783:box_ops:2593:603:t:0 "
    "10061:783:point_ops:1029:600:t:603 10062:783:poly_ops:2594:604:t:603 "
    "10063:783:circle_ops:2595:718:t:603 10064:2742:array_ops:2745:2277:t:2283 "
    "10065:403:uuid_ops:2968:2950:t:0 10066:405:uuid_ops:2969:2950:t:0 10067:403:pg_lsn_ops:3253:3220:t:0 "
    "10068:405:pg_lsn_ops:3254:3220:t:0 10069:403:enum_ops:3522:3500:t:0 10070:405:enum_ops:3523:3500:t:0 "
    "10071:403:tsvector_ops:3626:3614:t:0 10072:783:tsvector_ops:3655:3614:t:3642 "
    "10073:2742:tsvector_ops:3659:3614:t:25 10074:403:tsquery_ops:3683:3615:t:0 "
    "10075:783:tsquery_ops:3702:3615:t:20 10076:403:range_ops:3901:3831:t:0 "
    "10077:405:range_ops:3903:3831:t:0 10078:783:range_ops:3919:3831:t:0 "
    "10079:4000:range_ops:3474:3831:t:0 10080:403:multirange_ops:4199:4537:t:0 "
    "10081:405:multirange_ops:4225:4537:t:0 10082:783:multirange_ops:6158:4537:t:3831 "
    "10083:4000:box_ops:5000:603:t:0 10084:4000:quad_point_ops:4015:600:t:0 "
    "10085:4000:kd_point_ops:4016:600:f:0 10086:4000:text_ops:4017:25:t:0 "
    "10087:4000:poly_ops:5008:604:t:603 10088:403:jsonb_ops:4033:3802:t:0 "
    "10089:405:jsonb_ops:4034:3802:t:0 10090:2742:jsonb_ops:4036:3802:t:25 "
    "10091:2742:jsonb_path_ops:4037:3802:f:23 10092:3580:bytea_minmax_ops:4064:17:t:17 "
    "10093:3580:bytea_bloom_ops:4578:17:f:17 10094:3580:char_minmax_ops:4062:18:t:18 "
    "10095:3580:char_bloom_ops:4577:18:f:18 10096:3580:name_minmax_ops:4065:19:t:19 "
    "10097:3580:name_bloom_ops:4579:19:f:19 10098:3580:int8_minmax_ops:4054:20:t:20 "
    "10099:3580:int8_minmax_multi_ops:4602:20:f:20 10100:3580:int8_bloom_ops:4572:20:f:20 "
    "10101:3580:int2_minmax_ops:4054:21:t:21 10102:3580:int2_minmax_multi_ops:4602:21:f:21 "
    "10103:3580:int2_bloom_ops:4572:21:f:21 10104:3580:int4_minmax_ops:4054:23:t:23 "
    "10105:3580:int4_minmax_multi_ops:4602:23:f:23 10106:3580:int4_bloom_ops:4572:23:f:23 "
    "10107:3580:text_minmax_ops:4056:25:t:25 10108:3580:text_bloom_ops:4573:25:f:25 "
    "10109:3580:oid_minmax_ops:4068:26:t:26 10110:3580:oid_minmax_multi_ops:4606:26:f:26 "
    "10111:3580:oid_bloom_ops:4580:26:f:26 10112:3580:tid_minmax_ops:4069:27:t:27 "
    "10113:3580:tid_bloom_ops:4581:27:f:27 10114:3580:tid_minmax_multi_ops:4607:27:f:27 "
    "10115:3580:float4_minmax_ops:4070:700:t:700 10116:3580:float4_minmax_multi_ops:4608:700:f:700 "
    "10117:3580:float4_bloom_ops:4582:700:f:700 10118:3580:float8_minmax_ops:4070:701:t:701 "
    "10119:3580:float8_minmax_multi_ops:4608:701:f:701 10120:3580:float8_bloom_ops:4582:701:f:701 "
    "10121:3580:macaddr_minmax_ops:4074:829:t:829 10122:3580:macaddr_minmax_multi_ops:4609:829:f:829 "
    "10123:3580:macaddr_bloom_ops:4583:829:f:829 10124:3580:macaddr8_minmax_ops:4109:774:t:774 "
    "10125:3580:macaddr8_minmax_multi_ops:4610:774:f:774 10126:3580:macaddr8_bloom_ops:4584:774:f:774 "
    "10127:3580:inet_minmax_ops:4075:869:f:869 10128:3580:inet_minmax_multi_ops:4611:869:f:869 "
    "10129:3580:inet_bloom_ops:4585:869:f:869 10130:3580:inet_inclusion_ops:4102:869:t:869 "
    "10131:3580:bpchar_minmax_ops:4076:1042:t:1042 10132:3580:bpchar_bloom_ops:4586:1042:f:1042 "
    "10133:3580:time_minmax_ops:4077:1083:t:1083 10134:3580:time_minmax_multi_ops:4612:1083:f:1083 "
    "10135:3580:time_bloom_ops:4587:1083:f:1083 10136:3580:date_minmax_ops:4059:1082:t:1082 "
    "10137:3580:date_minmax_multi_ops:4605:1082:f:1082 10138:3580:date_bloom_ops:4576:1082:f:1082 "
    "10139:3580:timestamp_minmax_ops:4059:1114:t:1114 "
    "10140:3580:timestamp_minmax_multi_ops:4605:1114:f:1114 "
    "10141:3580:timestamp_bloom_ops:4576:1114:f:1114 10142:3580:timestamptz_minmax_ops:4059:1184:t:1184 "
    "10143:3580:timestamptz_minmax_multi_ops:4605:1184:f:1184 "
    "10144:3580:timestamptz_bloom_ops:4576:1184:f:1184 10145:3580:interval_minmax_ops:4078:1186:t:1186 "
    "10146:3580:interval_minmax_multi_ops:4613:1186:f:1186 10147:3580:interval_bloom_ops:4588:1186:f:1186 "
    "10148:3580:timetz_minmax_ops:4058:1266:t:1266 10149:3580:timetz_minmax_multi_ops:4604:1266:f:1266 "
    "10150:3580:timetz_bloom_ops:4575:1266:f:1266 10151:3580:bit_minmax_ops:4079:1560:t:1560 "
    "10152:3580:varbit_minmax_ops:4080:1562:t:1562 10153:3580:numeric_minmax_ops:4055:1700:t:1700 "
    "10154:3580:numeric_minmax_multi_ops:4603:1700:f:1700 10155:3580:numeric_bloom_ops:4574:1700:f:1700 "
    "10156:3580:uuid_minmax_ops:4081:2950:t:2950 10157:3580:uuid_minmax_multi_ops:4614:2950:f:2950 "
    "10158:3580:uuid_bloom_ops:4589:2950:f:2950 10159:3580:range_inclusion_ops:4103:3831:t:3831 "
    "10160:3580:pg_lsn_minmax_ops:4082:3220:t:3220 10161:3580:pg_lsn_minmax_multi_ops:4615:3220:f:3220 "
    "10162:3580:pg_lsn_bloom_ops:4590:3220:f:3220 10163:3580:box_inclusion_ops:4104:603:t:603"
)

# the row types of PostgreSQL 15's catalog relations: oid:typname:typarray:typrelid:schema (p / i)
PG_ROW_TYPES = (
    "71:pg_type:210:1247:p 75:pg_attribute:270:1249:p 81:pg_proc:272:1255:p 83:pg_class:273:1259:p "
    "1248:pg_database:10052:1262:p 2842:pg_authid:10057:1260:p 2843:pg_auth_members:10058:1261:p "
    "4066:pg_shseclabel:10093:3592:p 6101:pg_subscription:10112:6100:p 10001:pg_attrdef:10000:2604:p "
    "10003:pg_constraint:10002:2606:p 10005:pg_inherits:10004:2611:p 10007:pg_index:10006:2610:p "
    "10009:pg_operator:10008:2617:p 10011:pg_opfamily:10010:2753:p 10013:pg_opclass:10012:2616:p "
    "10015:pg_am:10014:2601:p 10017:pg_amop:10016:2602:p 10019:pg_amproc:10018:2603:p "
    "10021:pg_language:10020:2612:p 10023:pg_largeobject_metadata:10022:2995:p "
    "10025:pg_largeobject:10024:2613:p 10027:pg_aggregate:10026:2600:p 10029:pg_statistic:10028:2619:p "
    "10031:pg_statistic_ext:10030:3381:p 10033:pg_statistic_ext_data:10032:3429:p "
    "10035:pg_rewrite:10034:2618:p 10037:pg_trigger:10036:2620:p 10039:pg_event_trigger:10038:3466:p "
    "10041:pg_description:10040:2609:p 10043:pg_cast:10042:2605:p 10045:pg_enum:10044:3501:p "
    "10047:pg_namespace:10046:2615:p 10049:pg_conversion:10048:2607:p 10051:pg_depend:10050:2608:p "
    "10054:pg_db_role_setting:10053:2964:p 10056:pg_tablespace:10055:1213:p "
    "10060:pg_shdepend:10059:1214:p 10062:pg_shdescription:10061:2396:p 10064:pg_ts_config:10063:3602:p "
    "10066:pg_ts_config_map:10065:3603:p 10068:pg_ts_dict:10067:3600:p 10070:pg_ts_parser:10069:3601:p "
    "10072:pg_ts_template:10071:3764:p 10074:pg_extension:10073:3079:p "
    "10076:pg_foreign_data_wrapper:10075:2328:p 10078:pg_foreign_server:10077:1417:p "
    "10080:pg_user_mapping:10079:1418:p 10082:pg_foreign_table:10081:3118:p 10084:pg_policy:10083:3256:p "
    "10086:pg_replication_origin:10085:6000:p 10088:pg_default_acl:10087:826:p "
    "10090:pg_init_privs:10089:3394:p 10092:pg_seclabel:10091:3596:p 10095:pg_collation:10094:3456:p "
    "10097:pg_parameter_acl:10096:6243:p 10099:pg_partitioned_table:10098:3350:p "
    "10101:pg_range:10100:3541:p 10103:pg_transform:10102:3576:p 10105:pg_sequence:10104:2224:p "
    "10107:pg_publication:10106:6104:p 10109:pg_publication_namespace:10108:6237:p "
    "10111:pg_publication_rel:10110:6106:p 10114:pg_subscription_rel:10113:6102:p "
    "12002:pg_roles:12001:12000:p 12007:pg_shadow:12006:12005:p 12012:pg_group:12011:12010:p "
    "12016:pg_user:12015:12014:p 12020:pg_policies:12019:12018:p 12025:pg_rules:12024:12023:p "
    "12030:pg_views:12029:12028:p 12035:pg_tables:12034:12033:p 12040:pg_matviews:12039:12038:p "
    "12045:pg_indexes:12044:12043:p 12050:pg_sequences:12049:12048:p 12055:pg_stats:12054:12053:p "
    "12060:pg_stats_ext:12059:12058:p 12065:pg_stats_ext_exprs:12064:12063:p "
    "12070:pg_publication_tables:12069:12068:p 12075:pg_locks:12074:12073:p "
    "12079:pg_cursors:12078:12077:p 12083:pg_available_extensions:12082:12081:p "
    "12087:pg_available_extension_versions:12086:12085:p 12092:pg_prepared_xacts:12091:12090:p "
    "12097:pg_prepared_statements:12096:12095:p 12101:pg_seclabels:12100:12099:p "
    "12106:pg_settings:12105:12104:p 12112:pg_file_settings:12111:12110:p "
    "12116:pg_hba_file_rules:12115:12114:p 12120:pg_ident_file_mappings:12119:12118:p "
    "12124:pg_timezone_abbrevs:12123:12122:p 12128:pg_timezone_names:12127:12126:p "
    "12132:pg_config:12131:12130:p 12136:pg_shmem_allocations:12135:12134:p "
    "12140:pg_backend_memory_contexts:12139:12138:p 12144:pg_stat_all_tables:12143:12142:p "
    "12149:pg_stat_xact_all_tables:12148:12147:p 12154:pg_stat_sys_tables:12153:12152:p "
    "12159:pg_stat_xact_sys_tables:12158:12157:p 12163:pg_stat_user_tables:12162:12161:p "
    "12168:pg_stat_xact_user_tables:12167:12166:p 12172:pg_statio_all_tables:12171:12170:p "
    "12177:pg_statio_sys_tables:12176:12175:p 12181:pg_statio_user_tables:12180:12179:p "
    "12185:pg_stat_all_indexes:12184:12183:p 12190:pg_stat_sys_indexes:12189:12188:p "
    "12194:pg_stat_user_indexes:12193:12192:p 12198:pg_statio_all_indexes:12197:12196:p "
    "12203:pg_statio_sys_indexes:12202:12201:p 12207:pg_statio_user_indexes:12206:12205:p "
    "12211:pg_statio_all_sequences:12210:12209:p 12216:pg_statio_sys_sequences:12215:12214:p "
    "12220:pg_statio_user_sequences:12219:12218:p 12224:pg_stat_activity:12223:12222:p "
    "12229:pg_stat_replication:12228:12227:p 12234:pg_stat_slru:12233:12232:p "
    "12238:pg_stat_wal_receiver:12237:12236:p 12242:pg_stat_recovery_prefetch:12241:12240:p "
    "12246:pg_stat_subscription:12245:12244:p 12251:pg_stat_ssl:12250:12249:p "
    "12255:pg_stat_gssapi:12254:12253:p 12259:pg_replication_slots:12258:12257:p "
    "12264:pg_stat_replication_slots:12263:12262:p 12268:pg_stat_database:12267:12266:p "
    "12273:pg_stat_database_conflicts:12272:12271:p 12277:pg_stat_user_functions:12276:12275:p "
    "12282:pg_stat_xact_user_functions:12281:12280:p 12287:pg_stat_archiver:12286:12285:p "
    "12291:pg_stat_bgwriter:12290:12289:p 12295:pg_stat_wal:12294:12293:p "
    "12299:pg_stat_progress_analyze:12298:12297:p 12304:pg_stat_progress_vacuum:12303:12302:p "
    "12309:pg_stat_progress_cluster:12308:12307:p 12314:pg_stat_progress_create_index:12313:12312:p "
    "12319:pg_stat_progress_basebackup:12318:12317:p 12324:pg_stat_progress_copy:12323:12322:p "
    "12329:pg_user_mappings:12328:12327:p 12334:pg_replication_origin_status:12333:12332:p "
    "12338:pg_stat_subscription_stats:12337:12336:p 13229:information_schema_catalog_name:13228:13227:i "
    "13238:applicable_roles:13237:13236:i 13243:administrable_role_authorizations:13242:13241:i "
    "13247:attributes:13246:13245:i 13252:character_sets:13251:13250:i "
    "13257:check_constraint_routine_usage:13256:13255:i 13262:check_constraints:13261:13260:i "
    "13267:collations:13266:13265:i 13272:collation_character_set_applicability:13271:13270:i "
    "13277:column_column_usage:13276:13275:i 13282:column_domain_usage:13281:13280:i "
    "13287:column_privileges:13286:13285:i 13292:column_udt_usage:13291:13290:i "
    "13297:columns:13296:13295:i 13302:constraint_column_usage:13301:13300:i "
    "13307:constraint_table_usage:13306:13305:i 13312:domain_constraints:13311:13310:i "
    "13317:domain_udt_usage:13316:13315:i 13322:domains:13321:13320:i 13327:enabled_roles:13326:13325:i "
    "13331:key_column_usage:13330:13329:i 13336:parameters:13335:13334:i "
    "13341:referential_constraints:13340:13339:i 13346:role_column_grants:13345:13344:i "
    "13350:routine_column_usage:13349:13348:i 13355:routine_privileges:13354:13353:i "
    "13360:role_routine_grants:13359:13358:i 13364:routine_routine_usage:13363:13362:i "
    "13369:routine_sequence_usage:13368:13367:i 13374:routine_table_usage:13373:13372:i "
    "13379:routines:13378:13377:i 13384:schemata:13383:13382:i 13388:sequences:13387:13386:i "
    "13393:sql_features:13392:13391:i 13398:sql_implementation_info:13397:13396:i "
    "13403:sql_parts:13402:13401:i 13408:sql_sizing:13407:13406:i 13413:table_constraints:13412:13411:i "
    "13418:table_privileges:13417:13416:i 13423:role_table_grants:13422:13421:i "
    "13427:tables:13426:13425:i 13432:transforms:13431:13430:i "
    "13437:triggered_update_columns:13436:13435:i 13442:triggers:13441:13440:i "
    "13447:udt_privileges:13446:13445:i 13452:role_udt_grants:13451:13450:i "
    "13456:usage_privileges:13455:13454:i 13461:role_usage_grants:13460:13459:i "
    "13465:user_defined_types:13464:13463:i 13470:view_column_usage:13469:13468:i "
    "13475:view_routine_usage:13474:13473:i 13480:view_table_usage:13479:13478:i "
    "13485:views:13484:13483:i 13490:data_type_privileges:13489:13488:i 13495:element_types:13494:13493:i "
    "13500:_pg_foreign_table_columns:13499:13498:i 13505:column_options:13504:13503:i "
    "13509:_pg_foreign_data_wrappers:13508:13507:i 13513:foreign_data_wrapper_options:13512:13511:i "
    "13517:foreign_data_wrappers:13516:13515:i 13521:_pg_foreign_servers:13520:13519:i "
    "13526:foreign_server_options:13525:13524:i 13530:foreign_servers:13529:13528:i "
    "13534:_pg_foreign_tables:13533:13532:i 13539:foreign_table_options:13538:13537:i "
    "13543:foreign_tables:13542:13541:i 13547:_pg_user_mappings:13546:13545:i "
    "13552:user_mapping_options:13551:13550:i 13557:user_mappings:13556:13555:i"
)

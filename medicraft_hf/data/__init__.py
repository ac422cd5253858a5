"""OCT data in the one schema: loaders, validation, patient-level splits, save and load.

    folders / kermany / manifest / vendor  ->  rows  ->  rows_to_dataset  ->  split_by_patient
        ->  dataset_card  ->  save_dataset_dict  (->  medicraft_hf.hub.push_dataset_dict)

Submodules are imported on use (``from medicraft_hf.data.build import rows_to_dataset``) so
that importing one loader never pulls in the others' dependencies.
"""
